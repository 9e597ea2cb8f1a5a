/**
 * knative/: the Services and platform settings, built with the real kubectl kustomize,
 * validated against the Knative CRD models and the runtime-contract rules Knative's webhook
 * enforces, and cross-checked against the chart's output (release "secretid") and the code.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Service as KnativeService } from '@kubernetes-models/knative/serving.knative.dev/v1/Service';
import test from 'ava';
import { parseAllDocuments } from 'yaml';
import { localDomain } from '../scripts/local-hosts.ts';
import { requireTool } from '../scripts/tools.ts';
import { functionEnvironment, libpqVariables } from './helpers/environment.ts';
import {
  effectiveValues,
  ofKind,
  type RenderedObject,
  renderChart,
  selects,
  stringValue,
  valueAt,
} from './helpers/helm.ts';

// biome-ignore lint/suspicious/noExplicitAny: manifests are plain YAML
type Manifest = any;

const kustomize = (directory: string): Manifest[] =>
  parseAllDocuments(
    execFileSync(requireTool('kubectl'), ['kustomize', directory], { encoding: 'utf8' }),
  )
    .map((document) => document.toJS())
    .filter(Boolean);

const services = kustomize('knative');
const platform = kustomize('knative/platform');
const chart = renderChart({ release: 'secretid', namespace: 'default' });
const values = effectiveValues();
const serviceNamed = (name: string) => {
  const found = services.find((service) => service.metadata.name === name);
  if (!found) throw new Error(`no Knative Service ${name}`);
  return found;
};

/** Ports, environment names and fields Knative keeps for itself (knative.dev/serving). */
const reservedPorts = new Set([8012, 8013, 8022, 9090, 9091]);
const reservedEnv = new Set(['PORT', 'K_SERVICE', 'K_CONFIGURATION', 'K_REVISION']);
const allowedContainerFields = new Set([
  'name',
  'image',
  'command',
  'args',
  'workingDir',
  'ports',
  'env',
  'envFrom',
  'resources',
  'readinessProbe',
  'livenessProbe',
  'startupProbe',
  'securityContext',
  'imagePullPolicy',
  'terminationMessagePath',
  'terminationMessagePolicy',
  'volumeMounts',
]);
const allowedSecurityContext = new Set([
  'allowPrivilegeEscalation',
  'capabilities',
  'readOnlyRootFilesystem',
  'runAsGroup',
  'runAsNonRoot',
  'runAsUser',
  'seccompProfile',
]);
const allowedPodFields = new Set([
  'containers',
  'containerConcurrency',
  'timeoutSeconds',
  'responseStartTimeoutSeconds',
  'idleTimeoutSeconds',
  'serviceAccountName',
  'imagePullSecrets',
  'enableServiceLinks',
  'volumes',
  'automountServiceAccountToken',
]);

/** What Knative's admission webhook would refuse in a Service; empty means accepted. */
const runtimeContractProblems = (service: Manifest): string[] => {
  const problems: string[] = [];
  const name = service.metadata?.name ?? '?';
  const spec = service.spec?.template?.spec ?? {};
  for (const field of Object.keys(spec)) {
    if (!allowedPodFields.has(field)) problems.push(`${name}: pod field ${field} is not allowed`);
  }
  const containers: Manifest[] = spec.containers ?? [];
  if (containers.length !== 1) problems.push(`${name}: expected one container`);
  for (const container of containers) {
    for (const field of Object.keys(container)) {
      if (!allowedContainerFields.has(field)) problems.push(`${name}: container field ${field}`);
    }
    const ports = container.ports ?? [];
    if (ports.length > 1) problems.push(`${name}: more than one port`);
    const port = ports[0]?.containerPort ?? 8080;
    for (const { containerPort } of ports) {
      if (reservedPorts.has(containerPort))
        problems.push(`${name}: port ${containerPort} is reserved`);
    }
    if (ports[0]?.name && !['http1', 'h2c'].includes(ports[0].name)) {
      problems.push(`${name}: port name ${ports[0].name} is neither http1 nor h2c`);
    }
    if (ports[0]?.hostPort || ports[0]?.hostIP) problems.push(`${name}: hostPort/hostIP`);
    for (const variable of container.env ?? []) {
      if (reservedEnv.has(variable.name))
        problems.push(`${name}: env ${variable.name} is reserved`);
    }
    for (const probeName of ['readinessProbe', 'livenessProbe', 'startupProbe']) {
      const probe = container[probeName];
      if (!probe) continue;
      const probePort = probe.httpGet?.port ?? probe.tcpSocket?.port;
      if (probePort !== undefined && probePort !== port) {
        problems.push(`${name}: ${probeName} port ${probePort} is not the container port`);
      }
    }
    for (const field of Object.keys(container.securityContext ?? {})) {
      if (!allowedSecurityContext.has(field)) problems.push(`${name}: securityContext.${field}`);
    }
    if (container.securityContext?.privileged) problems.push(`${name}: privileged`);
  }
  const timeout = spec.timeoutSeconds ?? 300;
  if (timeout < 1 || timeout > 600)
    problems.push(`${name}: timeoutSeconds ${timeout} not in 1..600`);
  const concurrency = spec.containerConcurrency ?? 0;
  if (concurrency < 0 || concurrency > 1000) problems.push(`${name}: containerConcurrency`);
  const annotations = service.spec?.template?.metadata?.annotations ?? {};
  const scale = (key: string) => Number(annotations[`autoscaling.knative.dev/${key}`]);
  if (!(scale('min-scale') <= scale('max-scale'))) problems.push(`${name}: min-scale > max-scale`);
  if (!(scale('target') > 0)) problems.push(`${name}: autoscaling target must be positive`);
  if (!(scale('initial-scale') >= 1)) problems.push(`${name}: initial-scale below 1 needs a flag`);
  return problems;
};

test('the kustomization builds the two Services with the images set in one place', (t) => {
  t.deepEqual(services.map((service) => `${service.kind}/${service.metadata.name}`).sort(), [
    'Service/api',
    'Service/web',
  ]);
  const version = JSON.parse(readFileSync('package.json', 'utf8')).version;
  t.is(
    services.find((s) => s.metadata.name === 'api')?.spec.template.spec.containers[0].image,
    `secretid-api:${version}`,
  );
  t.is(
    services.find((s) => s.metadata.name === 'web')?.spec.template.spec.containers[0].image,
    `secretid-web:${version}`,
  );
  const chartFile = readFileSync('chart/Chart.yaml', 'utf8');
  t.regex(
    chartFile,
    new RegExp(`^appVersion: "${version}"$`, 'm'),
    'chart appVersion = package version',
  );
  t.is(stringValue(values, 'seed.image.tag'), version, 'the seed image tag = package version');
});

test('every Service is valid against the Knative CRD model', (t) => {
  for (const service of services) {
    t.notThrows(() => new KnativeService(service).validate(), service.metadata.name);
  }
});

test('every Service keeps the runtime contract Knative enforces', (t) => {
  for (const service of services) t.deepEqual(runtimeContractProblems(service), []);
});

test('the contract check fires on what Knative refuses', (t) => {
  const broken = structuredClone(serviceNamed('api'));
  const container = broken.spec.template.spec.containers[0];
  container.ports.push({ containerPort: 9090 });
  container.env.push({ name: 'PORT', value: '1' });
  container.readinessProbe.httpGet.port = 9999;
  container.lifecycle = { preStop: {} };
  broken.spec.template.spec.hostNetwork = true;
  broken.spec.template.metadata.annotations['autoscaling.knative.dev/min-scale'] = '20';
  const problems = runtimeContractProblems(broken).join('\n');
  for (const expected of [
    /more than one port/,
    /port 9090 is reserved/,
    /env PORT is reserved/,
    /readinessProbe port 9999/,
    /container field lifecycle/,
    /pod field hostNetwork/,
    /min-scale > max-scale/,
  ]) {
    t.regex(problems, expected);
  }
});

test('scale to zero, bounded scale, probes, limits and hardening on every Service', (t) => {
  for (const service of services) {
    const annotations = service.spec.template.metadata.annotations;
    t.is(annotations['autoscaling.knative.dev/min-scale'], '0');
    t.true(Number(annotations['autoscaling.knative.dev/max-scale']) >= 1);
    t.truthy(service.metadata.annotations['serving.knative.dev/rollout-duration']);
    const container = service.spec.template.spec.containers[0];
    t.is(container.readinessProbe.httpGet.path, '/readyz');
    t.is(container.livenessProbe.httpGet.path, '/healthz');
    for (const kind of ['requests', 'limits']) {
      t.truthy(container.resources[kind].cpu);
      t.truthy(container.resources[kind].memory);
    }
    t.like(container.securityContext, {
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      runAsNonRoot: true,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    });
    const drain = Number(
      container.env.find((v: Manifest) => v.name === 'SHUTDOWN_DRAIN_SECONDS')?.value,
    );
    // Knative sets the pod's grace period to timeoutSeconds; the user container's preStop hook
    // waits for the queue-proxy's drain (30 s without requests: drainSleepDuration in
    // knative.dev/serving pkg/queue/sharedmain), and only then does the function get SIGTERM.
    const queueProxyDrainSeconds = 30;
    const { timeoutSeconds, responseStartTimeoutSeconds } = service.spec.template.spec;
    t.true(drain > 0, 'a drain');
    t.true(
      timeoutSeconds >= queueProxyDrainSeconds + drain + 2,
      `the grace period (timeoutSeconds ${timeoutSeconds}) holds the queue-proxy's drain and the function's (${drain} s)`,
    );
    t.true(
      responseStartTimeoutSeconds > 0 && responseStartTimeoutSeconds <= 20,
      'the request deadline a client sees is responseStartTimeoutSeconds, not the grace period',
    );
  }
});

const configMap = (name: string) =>
  ofKind(chart, 'ConfigMap').find((map: RenderedObject) => map.metadata.name === name);
const secret = (name: string) =>
  ofKind(chart, 'Secret').find((item: RenderedObject) => item.metadata.name === name);

test('names, keys and environment match the chart and what the code reads', (t) => {
  for (const service of services) {
    const component = service.metadata.name as 'api' | 'web';
    t.is(
      service.metadata.name,
      stringValue(values, `hosts.${component}`),
      'Service name = host label',
    );
    const container = service.spec.template.spec.containers[0];
    const provided = new Set<string>();
    for (const source of container.envFrom ?? []) {
      const map = configMap(source.configMapRef.name);
      t.truthy(map, `ConfigMap ${source.configMapRef.name} is rendered by the chart`);
      for (const key of Object.keys((map?.data ?? {}) as object)) provided.add(key);
    }
    for (const variable of container.env ?? []) {
      provided.add(variable.name);
      const ref = variable.valueFrom?.secretKeyRef;
      if (ref) {
        const found = secret(ref.name);
        t.truthy(found, `Secret ${ref.name} is rendered by the chart`);
        t.true(ref.key in ((found?.data ?? {}) as object), `key ${ref.key} exists`);
      }
    }
    const reads = functionEnvironment[component];
    for (const name of provided) {
      t.true(
        reads.has(name) || libpqVariables.has(name),
        `${component}: ${name} is read by the code`,
      );
    }
    const required = component === 'api' ? ['DATABASE_URL', 'PGPASSWORD'] : ['API_URL'];
    for (const name of required) t.true(provided.has(name), `${component}: ${name} is provided`);
  }
  const apiUrl = new URL(
    String((configMap('secretid-web-env')?.data as Record<string, string> | undefined)?.API_URL),
  );
  t.is(
    apiUrl.hostname,
    `${serviceNamed('api').metadata.name}.default.svc.${stringValue(values, 'clusterDomain')}`,
  );
});

test("the chart lets the Services' pods through its NetworkPolicies", (t) => {
  const policies = ofKind(chart, 'NetworkPolicy');
  const policy = (suffix: string) =>
    policies.find((p: RenderedObject) => p.metadata.name.endsWith(suffix));
  const functions = policy('-functions') as Manifest;
  const databaseClients = policy('-database-clients') as Manifest;
  const postgresIngress = (policy('-postgres') as Manifest).spec.ingress[0].from[0].podSelector;
  for (const service of services) {
    const labels = service.spec.template.metadata.labels;
    t.true(selects(functions.spec.podSelector, labels), `${service.metadata.name} selected`);
  }
  const apiLabels = serviceNamed('api').spec.template.metadata.labels;
  const webLabels = serviceNamed('web').spec.template.metadata.labels;
  t.true(selects(databaseClients.spec.podSelector, apiLabels));
  t.true(selects(postgresIngress, apiLabels), 'the API may reach PostgreSQL');
  t.false(selects(postgresIngress, webLabels), 'the page may not');
});

test('PostgreSQL connections stay below max_connections at max-scale', (t) => {
  const api = serviceNamed('api');
  const maxScale = Number(
    api.spec.template.metadata.annotations['autoscaling.knative.dev/max-scale'],
  );
  const poolMax = Number(valueAt(values, 'api.poolMax'));
  const apiConfig = configMap('secretid-api-env')?.data as Record<string, string> | undefined;
  t.is(Number(apiConfig?.DB_POOL_MAX), poolMax);
  // Seed Job (1 seeder + 1 psql), backups (2), metrics exporter (1), superuser reserve (3).
  const others = 2 + 2 + 1 + 3;
  const maxConnections = Number(valueAt(values, 'postgres.maxConnections'));
  t.log(
    `${maxScale} x ${poolMax} + ${others} = ${maxScale * poolMax + others} < ${maxConnections}`,
  );
  t.true(maxScale * poolMax + others < maxConnections);
});

test('the platform settings match the chart: domain, hosts, Kourier', (t) => {
  const named = (kind: string, name: string) =>
    platform.find((item) => item.kind === kind && item.metadata.name === name);
  const domain = stringValue(values, 'domain');
  t.deepEqual(named('ConfigMap', 'config-domain')?.data, { [domain]: '' });
  t.is(localDomain, domain, 'npm start routes the same host names as the cluster');
  const network = named('ConfigMap', 'config-network')?.data;
  t.is(network['domain-template'], '{{.Name}}.{{.Domain}}');
  t.is(network['default-external-scheme'], 'https');
  t.is(network['ingress-class'], 'kourier.ingress.networking.knative.dev');
  // Tag hosts look like <tag>-<name>.<domain>: what the edge routes and the certificate names.
  t.is(network['tag-template'], '{{.Tag}}-{{.Name}}');
  const kourier = named('Service', stringValue(values, 'edge.kourier.service'));
  t.truthy(kourier);
  t.is(kourier.metadata.namespace, stringValue(values, 'edge.kourier.namespace'));
  t.is(kourier.spec.type, 'ClusterIP', 'Kourier must not claim :80/:443');
  t.true(
    kourier.spec.ports.some((port: Manifest) => port.port === valueAt(values, 'edge.kourier.port')),
  );
  const versions = readFileSync('knative/platform/versions.env', 'utf8');
  t.regex(versions, /^KNATIVE_SERVING_VERSION=\d+\.\d+\.\d+$/m);
  t.regex(versions, /^KNATIVE_NET_KOURIER_VERSION=\d+\.\d+\.\d+$/m);
});

test("config-autoscaler's scale bounds are ones Knative 1.21 starts with", (t) => {
  const autoscaler = platform.find(
    (item) => item.kind === 'ConfigMap' && item.metadata.name === 'config-autoscaler',
  )?.data as Record<string, string>;
  // With max-scale-limit set, Knative's controller, webhook and autoscaler refuse to start
  // unless the default max-scale lies in [1, max-scale-limit] (seen on the test cluster with
  // no max-scale: "max-scale = 0, must be in [1, max-scale-limit(20)] range").
  const limit = Number(autoscaler['max-scale-limit'] ?? 0);
  if (limit > 0) {
    const maxScale = Number(autoscaler['max-scale'] ?? 0);
    t.true(maxScale >= 1 && maxScale <= limit, `max-scale ${maxScale}, max-scale-limit ${limit}`);
  }
  for (const service of services) {
    const annotations = service.spec.template.metadata.annotations;
    t.true(
      Number(annotations['autoscaling.knative.dev/max-scale']) <= limit,
      service.metadata.name,
    );
  }
  t.regex(
    readFileSync('knative/platform/versions.env', 'utf8'),
    /^KNATIVE_CLIENT_VERSION=\d+\.\d+\.\d+$/m,
  );
});
