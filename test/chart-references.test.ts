/**
 * Cross-references inside the rendered chart, and from it to the code: a Service that selects
 * no pod, a port, Secret key or middleware that does not exist, or an environment variable the
 * code never reads fails here, in every scenario and for both installations.
 */
import { readdirSync } from 'node:fs';
import { join, posix } from 'node:path';
import test from 'ava';
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { IPodSpec } from 'kubernetes-models/v1/PodSpec';
import { parse } from 'yaml';
import { functionEnvironment, libpqVariables, namesRead } from './helpers/environment.ts';
import {
  chartDirectory,
  chartName,
  clusterScopedKinds,
  describe,
  effectiveValues,
  externalPodLabels,
  externalWorkloads,
  installations,
  type LabelSelector,
  type Labels,
  ofKind,
  type PodTemplate,
  podTemplates,
  type RenderedObject,
  type RenderOptions,
  renderChart,
  scenarioFiles,
  scenarioName,
  selects,
  stringValue,
  theObject,
  valueAt,
} from './helpers/helm.ts';

/** One render with what it was asked for. */
interface Render {
  label: string;
  release: string;
  namespace: string;
  values: Record<string, unknown>;
  objects: RenderedObject[];
}

const render = (label: string, options: RenderOptions): Render => ({
  label,
  release: options.release ?? 'secretid',
  namespace: options.namespace ?? 'default',
  values: effectiveValues(options),
  objects: renderChart(options),
});

const renders: Render[] = [
  ...scenarioFiles.flatMap((file) =>
    installations.map(({ release, namespace }) =>
      render(`${scenarioName(file)} as ${release}/${namespace}`, {
        release,
        namespace,
        valuesFiles: [file],
      }),
    ),
  ),
  render('non-default port, database, roles, key names, Kourier and monitoring', {
    release: 'agency-7',
    namespace: 'field-ops',
    set: {
      'postgres.port': 6543,
      'postgres.database': 'identities',
      'credentials.roles.owner': 'identity_owner',
      'credentials.roles.reader': 'identity_reader',
      'credentials.roles.monitor': 'identity_monitor',
      'credentials.keys.readerPassword': 'api-password',
      'credentials.keys.monitorPassword': 'exporter-password',
      'edge.kourier.namespace': 'gateway',
      'edge.kourier.port': 8080,
      'postgresExporter.port': 9188,
      'monitoring.traefikNamespace': 'traefik',
      'monitoring.traefikMetricsPort': 9101,
      'prometheus.basicAuth.existingSecret': 'agency-prometheus-users',
      'prometheus.storage.persistent': false,
    },
  }),
  render('Prometheus alone: no kube-state-metrics, no exporter', {
    release: 'agency-7',
    namespace: 'field-ops',
    set: { 'kubeStateMetrics.enabled': false, 'postgresExporter.enabled': false },
  }),
  render('monitoring without Prometheus', {
    set: { 'prometheus.enabled': false },
  }),
  render('monitoring off', {
    set: { 'monitoring.enabled': false },
  }),
];

const spec = <T>(object: RenderedObject) => (object.spec ?? {}) as T;
const containersOf = (pod: IPodSpec | undefined): IContainer[] => [
  ...(pod?.initContainers ?? []),
  ...(pod?.containers ?? []),
];
const hasPort = (containers: IContainer[], port: string | number) =>
  containers.some((container) =>
    (container.ports ?? []).some((declared) =>
      typeof port === 'string' ? declared.name === port : declared.containerPort === port,
    ),
  );
const podLabels = ({ template }: PodTemplate): Labels =>
  (template.metadata?.labels ?? {}) as Labels;
const byName = (objects: RenderedObject[], kind: string, name: string) =>
  objects.find((object) => object.kind === kind && object.metadata.name === name);

/** Services select pods of the output, and their target ports are those pods' ports. */
const serviceProblems = ({ objects }: Render) => {
  const templates = podTemplates(objects);
  return ofKind(objects, 'Service').flatMap((service) => {
    const { selector, ports = [] } = spec<{
      selector?: Labels;
      ports?: { name?: string; port: number; targetPort?: string | number }[];
    }>(service);
    if (!selector || Object.keys(selector).length === 0)
      return [`${describe(service)}: no selector`];
    const selected = templates.filter((pod) => selects({ matchLabels: selector }, podLabels(pod)));
    if (selected.length === 0) return [`${describe(service)}: selects no pod template`];
    return ports.flatMap((port) => {
      const target = port.targetPort ?? port.port;
      return selected
        .filter(({ template }) => !hasPort(template.spec?.containers ?? [], target))
        .map(
          ({ owner }) =>
            `${describe(service)}: targetPort ${target} is not a port of ${describe(owner)}`,
        );
    });
  });
};

/** A StatefulSet's serviceName is a headless Service selecting its pods; selectors match templates. */
const workloadProblems = ({ objects }: Render) =>
  podTemplates(objects).flatMap(({ owner, template }) => {
    const problems: string[] = [];
    const { selector, serviceName } = spec<{ selector?: LabelSelector; serviceName?: string }>(
      owner,
    );
    if (
      owner.kind !== 'Job' &&
      owner.kind !== 'CronJob' &&
      !selects(selector, template.metadata?.labels as Labels)
    ) {
      problems.push(`${describe(owner)}: its selector does not select its own pod template`);
    }
    if (owner.kind === 'StatefulSet') {
      const service = byName(objects, 'Service', serviceName ?? '');
      const serviceSpec = service
        ? spec<{ clusterIP?: string; selector?: Labels }>(service)
        : undefined;
      if (!serviceSpec)
        problems.push(`${describe(owner)}: serviceName ${serviceName} is not rendered`);
      else if (serviceSpec.clusterIP !== 'None')
        problems.push(`${describe(owner)}: Service ${serviceName} is not headless`);
      else if (
        !selects({ matchLabels: serviceSpec.selector ?? {} }, template.metadata?.labels as Labels)
      ) {
        problems.push(`${describe(owner)}: Service ${serviceName} does not select its pods`);
      }
    }
    return problems;
  });

/** Key sets of the Secrets and ConfigMaps a pod may use: rendered, or provided outside. */
const keyStores = ({ objects, values }: Pick<Render, 'objects' | 'values'>) => {
  const keysOf = (object: RenderedObject, ...fields: string[]) =>
    new Set(fields.flatMap((field) => Object.keys((object[field] ?? {}) as object)));
  const secrets = new Map(
    ofKind(objects, 'Secret').map((secret) => [
      secret.metadata.name,
      keysOf(secret, 'data', 'stringData'),
    ]),
  );
  const configMaps = new Map(
    ofKind(objects, 'ConfigMap').map((map) => [
      map.metadata.name,
      keysOf(map, 'data', 'binaryData'),
    ]),
  );
  // Documented external Secrets: the values name them and the keys they must hold.
  const credentials = stringValue(values, 'credentials.existingSecret');
  if (credentials) {
    secrets.set(credentials, new Set(Object.values(valueAt(values, 'credentials.keys') as Labels)));
  }
  if (stringValue(values, 'edge.tls.source') === 'existingSecret') {
    secrets.set(stringValue(values, 'edge.tls.existingSecret'), new Set(['tls.crt', 'tls.key']));
  }
  // cert-manager writes each Certificate's Secret: the leaf, its key and the issuing CA.
  for (const certificate of ofKind(objects, 'Certificate')) {
    const { secretName } = certificate.spec as { secretName: string };
    secrets.set(secretName, new Set(['tls.crt', 'tls.key', 'ca.crt']));
  }
  const basicAuth = stringValue(values, 'prometheus.basicAuth.existingSecret');
  if (basicAuth) secrets.set(basicAuth, new Set(['username', 'password']));
  return { secrets, configMaps };
};

/** Every Secret, ConfigMap, key, claim and mount a pod names exists. */
const podReferenceProblems = (current: Render) => {
  const { objects } = current;
  const { secrets, configMaps } = keyStores(current);
  const claims = new Set(
    ofKind(objects, 'PersistentVolumeClaim').map((claim) => claim.metadata.name),
  );
  const check = (where: string, kind: 'Secret' | 'ConfigMap', name = '', keys: string[] = []) => {
    const store = (kind === 'Secret' ? secrets : configMaps).get(name);
    if (!store)
      return [`${where}: ${kind} ${name} is neither rendered nor a documented external one`];
    return keys
      .filter((key) => !store.has(key))
      .map((key) => `${where}: ${kind} ${name} has no key ${key}`);
  };
  return podTemplates(objects).flatMap(({ owner, template }) => {
    const pod = template.spec;
    const volumes = pod?.volumes ?? [];
    const templateClaims = (
      spec<{ volumeClaimTemplates?: { metadata?: { name?: string } }[] }>(owner)
        .volumeClaimTemplates ?? []
    ).map((claim) => claim.metadata?.name);
    const problems = volumes.flatMap((volume) => {
      const where = `${describe(owner)} volume ${volume.name}`;
      const items = (list?: { key: string }[]) => (list ?? []).map((item) => item.key);
      return [
        ...(volume.secret
          ? check(where, 'Secret', volume.secret.secretName, items(volume.secret.items))
          : []),
        ...(volume.configMap
          ? check(where, 'ConfigMap', volume.configMap.name, items(volume.configMap.items))
          : []),
        ...(volume.projected?.sources ?? []).flatMap((source) => [
          ...(source.secret
            ? check(where, 'Secret', source.secret.name, items(source.secret.items))
            : []),
          ...(source.configMap
            ? check(where, 'ConfigMap', source.configMap.name, items(source.configMap.items))
            : []),
        ]),
        ...(volume.persistentVolumeClaim &&
        !claims.has(volume.persistentVolumeClaim.claimName) &&
        !templateClaims.includes(volume.persistentVolumeClaim.claimName)
          ? [`${where}: claim ${volume.persistentVolumeClaim.claimName} is not rendered`]
          : []),
        ...(volume.hostPath ? [`${where}: hostPath`] : []),
      ];
    });
    for (const container of containersOf(pod)) {
      const where = `${describe(owner)} container ${container.name}`;
      for (const { name, valueFrom } of container.env ?? []) {
        const { secretKeyRef: secret, configMapKeyRef: map } = valueFrom ?? {};
        if (secret)
          problems.push(...check(`${where} env ${name}`, 'Secret', secret.name, [secret.key]));
        if (map) problems.push(...check(`${where} env ${name}`, 'ConfigMap', map.name, [map.key]));
      }
      for (const source of container.envFrom ?? []) {
        if (source.secretRef) problems.push(...check(where, 'Secret', source.secretRef.name));
        if (source.configMapRef)
          problems.push(...check(where, 'ConfigMap', source.configMapRef.name));
      }
      for (const mount of container.volumeMounts ?? []) {
        if (
          !volumes.some((volume) => volume.name === mount.name) &&
          !templateClaims.includes(mount.name)
        ) {
          problems.push(`${where}: mounts ${mount.name}, which is no volume of the pod`);
        }
      }
    }
    return problems;
  });
};

/** Claims bind to the rendered volume and the volume is reserved for that claim. */
const volumeProblems = ({ objects, namespace }: Render) =>
  ofKind(objects, 'PersistentVolumeClaim').flatMap((claim) => {
    const { volumeName } = spec<{ volumeName?: string }>(claim);
    if (!volumeName) return [];
    const volume = byName(objects, 'PersistentVolume', volumeName);
    if (!volume) return [`${describe(claim)}: volume ${volumeName} is not rendered`];
    const { claimRef } = spec<{ claimRef?: { name?: string; namespace?: string } }>(volume);
    return claimRef?.name === claim.metadata.name && claimRef.namespace === namespace
      ? []
      : [
          `${describe(volume)}: claimRef ${JSON.stringify(claimRef)} is not ${namespace}/${claim.metadata.name}`,
        ];
  });

/** Probes point at ports their container declares. */
const probeProblems = ({ objects }: Render) =>
  podTemplates(objects).flatMap(({ owner, template }) =>
    containersOf(template.spec).flatMap((container) =>
      (['startupProbe', 'readinessProbe', 'livenessProbe'] as const).flatMap((kind) => {
        const probe = container[kind];
        const port = probe?.httpGet?.port ?? probe?.tcpSocket?.port ?? probe?.grpc?.port;
        return port === undefined || hasPort([container], port)
          ? []
          : [
              `${describe(owner)} container ${container.name}: ${kind} port ${port} is not declared`,
            ];
      }),
    ),
  );

interface PolicyPeer {
  podSelector?: LabelSelector;
  namespaceSelector?: LabelSelector;
}
interface PolicyRule {
  from?: PolicyPeer[];
  to?: PolicyPeer[];
  ports?: { port?: number | string; protocol?: string }[];
}

/** A pod a policy can select: a rendered pod template or an external workload's pods. */
interface PolicyTarget {
  what: string;
  labels: Labels;
  ports: (number | string)[];
}

/** The rendered pods and the external workloads' pods of a render, with their ports. */
const policyTargets = ({ objects, release }: Render): PolicyTarget[] => [
  ...podTemplates(objects).map((pod) => ({
    what: describe(pod.owner),
    labels: podLabels(pod),
    ports: (pod.template.spec?.containers ?? []).flatMap((container) =>
      (container.ports ?? []).flatMap((port) => [
        port.containerPort,
        ...(port.name ? [port.name] : []),
      ]),
    ),
  })),
  ...externalWorkloads.map((workload, index) => ({
    what: `${workload.component} (${workload.deployedBy})`,
    labels: externalPodLabels(release)[index] as Labels,
    ports: [...workload.ports],
  })),
];

/** The components a selector names, by matchLabels or an In expression. */
const componentsNamed = (selector?: LabelSelector) => [
  ...(selector?.matchLabels?.['app.kubernetes.io/component'] !== undefined
    ? [selector.matchLabels['app.kubernetes.io/component']]
    : []),
  ...(selector?.matchExpressions ?? [])
    .filter(({ key, operator }) => key === 'app.kubernetes.io/component' && operator === 'In')
    .flatMap((expression) => expression.values ?? []),
];

/**
 * NetworkPolicies select pods that exist (in the output or among the external workloads), name
 * no component that nothing runs, and a rule's ports are real: each port is a port of at least
 * one pod it opens, and each pod it opens has at least one of the ports (a policy that selects
 * several kinds of pods, like the scrape policy, opens each of them on its own ports).
 */
const networkPolicyProblems = (current: Render) => {
  const targets = policyTargets(current);
  const running = new Set(targets.map((target) => target.labels['app.kubernetes.io/component']));
  const selected = (selector?: LabelSelector) =>
    targets.filter((target) => selects(selector, target.labels));
  const portProblems = (where: string, ports: PolicyRule['ports'], pods: PolicyTarget[]) => {
    const declared = (ports ?? []).flatMap(({ port }) => (port === undefined ? [] : [port]));
    if (declared.length === 0) return [];
    return [
      ...declared
        .filter((port) => !pods.some((pod) => pod.ports.includes(port)))
        .map(
          (port) =>
            `${where}: port ${port} is not a port of any pod it opens (${pods.map((pod) => pod.what).join(', ')})`,
        ),
      ...pods
        .filter((pod) => !declared.some((port) => pod.ports.includes(port)))
        .map((pod) => `${where}: opens ${pod.what} on none of its ports (${declared.join(', ')})`),
    ];
  };
  const unknownComponents = (where: string, selector?: LabelSelector) =>
    componentsNamed(selector)
      .filter((component) => !running.has(component))
      .map((component) => `${where}: names component ${component}, which nothing runs`);
  return ofKind(current.objects, 'NetworkPolicy').flatMap((policy) => {
    const {
      podSelector,
      ingress = [],
      egress = [],
    } = spec<{
      podSelector?: LabelSelector;
      ingress?: PolicyRule[];
      egress?: PolicyRule[];
    }>(policy);
    const where = describe(policy);
    const problems =
      selected(podSelector).length > 0 ? [] : [`${where}: podSelector selects no pod`];
    problems.push(...unknownComponents(where, podSelector));
    const samePodPeers = (peers: PolicyPeer[] = []) =>
      peers.filter((peer) => peer.podSelector && !peer.namespaceSelector);
    for (const rule of ingress) {
      for (const peer of samePodPeers(rule.from)) {
        if (selected(peer.podSelector).length === 0)
          problems.push(`${where}: an ingress peer selects no pod`);
        problems.push(...unknownComponents(`${where} ingress peer`, peer.podSelector));
      }
      problems.push(...portProblems(`${where} ingress`, rule.ports, selected(podSelector)));
    }
    for (const rule of egress) {
      for (const peer of samePodPeers(rule.to)) {
        if (selected(peer.podSelector).length === 0)
          problems.push(`${where}: an egress peer selects no pod`);
        problems.push(...unknownComponents(`${where} egress peer`, peer.podSelector));
        problems.push(...portProblems(`${where} egress`, rule.ports, selected(peer.podSelector)));
      }
    }
    return problems;
  });
};

interface Route {
  middlewares?: { name: string; namespace?: string }[];
  services?: { kind?: string; name: string; namespace?: string; port?: number | string }[];
}

/** IngressRoutes name middlewares, TLS options, Secrets and Services (and their ports) that exist. */
const ingressRouteProblems = ({ objects, values, namespace }: Render) => {
  const { secrets } = keyStores({ objects, values });
  const certificateSecrets = ofKind(objects, 'Certificate').map(
    (certificate) => spec<{ secretName: string }>(certificate).secretName,
  );
  const kourier = {
    name: stringValue(values, 'edge.kourier.service'),
    namespace: stringValue(values, 'edge.kourier.namespace'),
    port: valueAt(values, 'edge.kourier.port'),
  };
  return ofKind(objects, 'IngressRoute').flatMap((route) => {
    const where = describe(route);
    const { routes = [], tls } = spec<{
      routes?: Route[];
      tls?: { secretName?: string; options?: { name: string; namespace?: string } };
    }>(route);
    const problems: string[] = [];
    for (const { middlewares = [], services = [] } of routes) {
      for (const middleware of middlewares) {
        if (
          (middleware.namespace ?? namespace) !== namespace ||
          !byName(objects, 'Middleware', middleware.name)
        ) {
          problems.push(`${where}: middleware ${middleware.name} is not rendered`);
        }
      }
      for (const service of services) {
        if (service.kind === 'TraefikService') {
          if (
            !service.name.endsWith('@internal') &&
            !byName(objects, 'TraefikService', service.name)
          ) {
            problems.push(`${where}: TraefikService ${service.name} does not exist`);
          }
        } else if ((service.namespace ?? namespace) !== namespace) {
          const target = { name: service.name, namespace: service.namespace, port: service.port };
          if (JSON.stringify(target) !== JSON.stringify(kourier)) {
            problems.push(
              `${where}: service ${JSON.stringify(target)} is not Kourier ${JSON.stringify(kourier)}`,
            );
          }
        } else {
          const target = byName(objects, 'Service', service.name);
          const ports = target
            ? (spec<{ ports?: { name?: string; port: number }[] }>(target).ports ?? [])
            : [];
          if (!target) problems.push(`${where}: Service ${service.name} is not rendered`);
          else if (!ports.some((port) => port.port === service.port || port.name === service.port))
            problems.push(`${where}: Service ${service.name} has no port ${service.port}`);
        }
      }
    }
    if (tls) {
      const options = tls.options;
      if (
        options &&
        ((options.namespace ?? namespace) !== namespace ||
          !byName(objects, 'TLSOption', options.name))
      ) {
        problems.push(`${where}: TLSOption ${options.name} is not rendered`);
      }
      const name = tls.secretName ?? '';
      const keys = secrets.get(name);
      const issued = certificateSecrets.includes(name);
      if (!issued && !(keys?.has('tls.crt') && keys.has('tls.key'))) {
        problems.push(
          `${where}: TLS Secret ${name} is neither rendered, issued by cert-manager nor external`,
        );
      }
    }
    return problems;
  });
};

const envValue = (container: IContainer | undefined, name: string) =>
  container?.env?.find((variable) => variable.name === name)?.value;
const findContainer = (objects: RenderedObject[], kind: string, name: string) =>
  podTemplates(ofKind(objects, kind))
    .flatMap(({ template }) => containersOf(template.spec))
    .find((container) => container.name === name);

/** Every database client names the PostgreSQL Service's DNS name, port, database and its role. */
const databaseAddressProblems = ({ objects, values, namespace }: Render) => {
  const service = ofKind(objects, 'Service').find(
    (candidate) =>
      spec<{ clusterIP?: string }>(candidate).clusterIP !== 'None' &&
      candidate.metadata.name.endsWith('-postgres'),
  );
  if (!service) return ['no PostgreSQL Service'];
  const host = `${service.metadata.name}.${namespace}.svc`;
  const port = String(spec<{ ports: { port: number }[] }>(service).ports[0]?.port);
  const database = stringValue(values, 'postgres.database');
  const roles = valueAt(values, 'credentials.roles') as { owner: string; reader: string };
  const problems: string[] = [];
  const checkUrl = (where: string, text: string | undefined, role: string) => {
    const url = new URL(text ?? 'invalid:');
    const found = `${url.protocol}//${url.username}@${url.hostname}:${url.port || '5432'}${url.pathname}`;
    const expected = `postgres://${role}@${host}:${port}/${database}`;
    if (found !== expected) problems.push(`${where}: DATABASE_URL ${found}, expected ${expected}`);
    if (url.password) problems.push(`${where}: DATABASE_URL carries a password`);
  };
  if (ofKind(objects, 'Job').length > 0) {
    checkUrl(
      'seed Job',
      envValue(findContainer(objects, 'Job', 'seed'), 'DATABASE_URL'),
      roles.owner,
    );
    const ensureRoles = findContainer(objects, 'Job', 'ensure-roles');
    const address = `${envValue(ensureRoles, 'PGHOST')}:${envValue(ensureRoles, 'PGPORT')}/${envValue(ensureRoles, 'DATABASE')}`;
    if (address !== `${host}:${port}/${database}`)
      problems.push(`ensure-roles: connects to ${address}`);
  }
  const apiEnvironment = ofKind(objects, 'ConfigMap').find((map) =>
    map.metadata.name.endsWith('-api-env'),
  );
  checkUrl(
    'API ConfigMap',
    (apiEnvironment?.data as Labels | undefined)?.DATABASE_URL,
    roles.reader,
  );
  return problems;
};

const apiReads = functionEnvironment.api;
const seederReads = namesRead('db-seed/src/cli.ts', /process\.env\.([A-Z0-9_]+)/g);
const ensureRolesReads = namesRead(
  join(chartDirectory, 'files/postgres/ensure-roles.sh'),
  /\$\{?!?([A-Z][A-Z0-9_]+)/g,
);

/** The environment the chart writes is what the code reads. */
const environmentProblems = ({ objects }: Render) => {
  const problems: string[] = [];
  const unread = (where: string, names: string[], read: Set<string>) =>
    names
      .filter((name) => !read.has(name) && !libpqVariables.has(name))
      .forEach((name) => {
        problems.push(`${where}: ${name} is not read by the code`);
      });
  const apiEnvironment = ofKind(objects, 'ConfigMap').find((map) =>
    map.metadata.name.endsWith('-api-env'),
  );
  unread('API ConfigMap', Object.keys((apiEnvironment?.data ?? {}) as object), apiReads);
  const names = (container?: IContainer) => (container?.env ?? []).map((variable) => variable.name);
  if (ofKind(objects, 'Job').length > 0) {
    unread('seed container', names(findContainer(objects, 'Job', 'seed')), seederReads);
    unread(
      'ensure-roles container',
      names(findContainer(objects, 'Job', 'ensure-roles')),
      ensureRolesReads,
    );
  }
  return problems;
};

/** Basic-auth middlewares read a Secret that exists and holds "users" (htpasswd lines). */
/**
 * A basic-auth middleware reads a Secret of a shape Traefik accepts (its CRD provider drops the
 * middleware, and the route with it, otherwise): type kubernetes.io/basic-auth with username
 * and password, or an Opaque Secret of exactly one key of htpasswd lines. An external Secret
 * is the operator's to shape (values.yaml says how).
 */
const middlewareProblems = ({ objects, values }: Render) => {
  const { secrets } = keyStores({ objects, values });
  const external = stringValue(values, 'prometheus.basicAuth.existingSecret');
  return ofKind(objects, 'Middleware').flatMap((middleware) => {
    const { basicAuth } = spec<{ basicAuth?: { secret?: string } }>(middleware);
    if (!basicAuth) return [];
    const name = basicAuth.secret ?? '';
    if (name && name === external) return [];
    const rendered = ofKind(objects, 'Secret').find((secret) => secret.metadata.name === name);
    const keys = [...(secrets.get(name) ?? [])].sort();
    const type = (rendered as { type?: string } | undefined)?.type ?? 'Opaque';
    const accepted =
      rendered &&
      ((type === 'kubernetes.io/basic-auth' &&
        keys.includes('username') &&
        keys.includes('password')) ||
        (type === 'Opaque' && keys.length === 1));
    return accepted
      ? []
      : [
          `${describe(middleware)}: basicAuth Secret ${name} is not rendered, or not of a shape Traefik reads (type ${type}, keys ${keys.join(', ') || 'none'})`,
        ];
  });
};

interface Subject {
  kind: string;
  name: string;
  namespace?: string;
}

/**
 * RBAC holds together: every ServiceAccount a pod names is rendered and used; every binding
 * binds rendered ServiceAccounts of the release's namespace (no users, no groups) to a rendered
 * role; every role is bound.
 */
const rbacProblems = ({ objects, namespace }: Render) => {
  const problems: string[] = [];
  const accounts = ofKind(objects, 'ServiceAccount').map((account) => account.metadata.name);
  const used = new Set<string>();
  for (const { owner, template } of podTemplates(objects)) {
    const account = template.spec?.serviceAccountName;
    if (!account) continue;
    used.add(account);
    if (!accounts.includes(account))
      problems.push(`${describe(owner)}: ServiceAccount ${account} is not rendered`);
  }
  for (const account of accounts.filter((name) => !used.has(name)))
    problems.push(`ServiceAccount/${account}: no pod uses it`);
  const bindings = [...ofKind(objects, 'ClusterRoleBinding'), ...ofKind(objects, 'RoleBinding')];
  const bound = new Set<string>();
  for (const binding of bindings) {
    const where = describe(binding);
    const roleRef = binding.roleRef as { apiGroup: string; kind: string; name: string };
    bound.add(`${roleRef.kind}/${roleRef.name}`);
    if (roleRef.apiGroup !== 'rbac.authorization.k8s.io')
      problems.push(`${where}: roleRef apiGroup ${roleRef.apiGroup}`);
    if (binding.kind === 'ClusterRoleBinding' && roleRef.kind !== 'ClusterRole')
      problems.push(`${where}: roleRef kind ${roleRef.kind}`);
    if (!byName(objects, roleRef.kind, roleRef.name))
      problems.push(`${where}: ${roleRef.kind} ${roleRef.name} is not rendered`);
    const subjects = (binding.subjects ?? []) as Subject[];
    if (subjects.length === 0) problems.push(`${where}: no subjects`);
    for (const subject of subjects) {
      if (subject.kind !== 'ServiceAccount') {
        problems.push(`${where}: binds a ${subject.kind} (${subject.name})`);
      } else if (
        (subject.namespace ?? binding.metadata.namespace) !== namespace ||
        !accounts.includes(subject.name)
      ) {
        problems.push(
          `${where}: subject ServiceAccount ${subject.namespace}/${subject.name} is not a rendered ServiceAccount of ${namespace}`,
        );
      }
    }
  }
  for (const role of [...ofKind(objects, 'ClusterRole'), ...ofKind(objects, 'Role')]) {
    if (!bound.has(describe(role))) problems.push(`${describe(role)}: no binding uses it`);
  }
  return problems;
};

/** Cluster-scoped objects carry the namespace and the release's prefix in their names. */
const clusterScopedProblems = ({ objects, namespace, release }: Render) => {
  const fullname = release.includes(chartName) ? release : `${release}-${chartName}`;
  return objects
    .filter((object) => clusterScopedKinds.includes(object.kind))
    .filter(
      (object) =>
        !object.metadata.name.startsWith(`${namespace}-${fullname}-`) ||
        object.metadata.namespace !== undefined,
    )
    .map((object) => `${describe(object)}: not named ${namespace}-${fullname}-*, or namespaced`);
};

/** Variables postgres_exporter reads (its README: DATA_SOURCE_* and PG_EXPORTER_*). */
const exporterVariables =
  /^(DATA_SOURCE_(NAME|URI|USER|USER_FILE|PASS|PASS_FILE)|PG_EXPORTER_[A-Z_]+)$/;

/**
 * The exporter sidecar reads the PostgreSQL server of its own pod, on the server's port and
 * database, as the monitor role, with the password ensure-roles gives that role, and listens
 * on the port the pod declares and announces.
 */
const exporterProblems = ({ objects, values }: Render) => {
  const [postgres] = podTemplates(ofKind(objects, 'StatefulSet'));
  const exporter = postgres?.template.spec?.containers.find(
    (container) => container.name === 'postgres-exporter',
  );
  const enabled =
    valueAt(values, 'monitoring.enabled') && valueAt(values, 'postgresExporter.enabled');
  if (!enabled) return exporter ? ['the exporter runs although switched off'] : [];
  if (!postgres || !exporter) return ['no postgres-exporter container in the PostgreSQL pod'];
  const problems: string[] = [];
  const variable = (name: string) => exporter.env?.find((entry) => entry.name === name);
  const monitor = stringValue(values, 'credentials.roles.monitor');
  if (variable('DATA_SOURCE_USER')?.value !== monitor)
    problems.push(
      `exporter: DATA_SOURCE_USER is ${variable('DATA_SOURCE_USER')?.value}, not ${monitor}`,
    );
  const address = new URL(`postgres://${variable('DATA_SOURCE_URI')?.value ?? ''}`);
  const expected = `127.0.0.1:${valueAt(values, 'postgres.port')}/${stringValue(values, 'postgres.database')}`;
  const found = `${address.hostname}:${address.port || '5432'}${address.pathname}`;
  if (found !== expected) problems.push(`exporter: connects to ${found}, not ${expected}`);
  const password = variable('DATA_SOURCE_PASS')?.valueFrom?.secretKeyRef;
  const key = stringValue(values, 'credentials.keys.monitorPassword');
  if (password?.key !== key)
    problems.push(`exporter: DATA_SOURCE_PASS key ${password?.key}, not ${key}`);
  const ensureRoles = findContainer(objects, 'Job', 'ensure-roles');
  if (ensureRoles) {
    const given = ensureRoles.env?.find((entry) => entry.name === 'MONITOR_PASSWORD')?.valueFrom
      ?.secretKeyRef;
    if (JSON.stringify(given) !== JSON.stringify(password))
      problems.push(
        `exporter: its password ${JSON.stringify(password)} is not the one ensure-roles sets (${JSON.stringify(given)})`,
      );
    if (envValue(ensureRoles, 'MONITOR_ROLE') !== monitor)
      problems.push(`ensure-roles: MONITOR_ROLE is ${envValue(ensureRoles, 'MONITOR_ROLE')}`);
  }
  for (const { name } of exporter.env ?? []) {
    if (!exporterVariables.test(name))
      problems.push(`exporter: ${name} is not read by postgres_exporter`);
  }
  const port = Number(valueAt(values, 'postgresExporter.port'));
  const listen = (exporter.args ?? []).find((arg) => arg.startsWith('--web.listen-address='));
  if (!listen?.endsWith(`:${port}`)) problems.push(`exporter: listens on ${listen}, not :${port}`);
  if (
    !(exporter.ports ?? []).some(
      (declared) => declared.containerPort === port && declared.name === 'metrics',
    )
  )
    problems.push(`exporter: declares no port ${port} named metrics`);
  const annotations = postgres.template.metadata?.annotations ?? {};
  if (annotations['prometheus.io/port'] !== String(port))
    problems.push(`PostgreSQL pod: prometheus.io/port is ${annotations['prometheus.io/port']}`);
  return problems;
};

interface RelabelConfig {
  source_labels?: string[];
  regex?: string;
  action?: string;
  replacement?: string;
  target_label?: string;
}

interface ScrapeJob {
  job_name: string;
  kubernetes_sd_configs?: { role: string; namespaces?: { names?: string[] } }[];
  relabel_configs?: RelabelConfig[];
  metric_relabel_configs?: RelabelConfig[];
}

/** The labels a rule group's expressions aggregate by, `le` aside. */
const groupingLabels = (ruleFileTexts: string[], groupName: string) => {
  const expressions = ruleFileTexts
    .flatMap(
      (text) =>
        (parse(text) as { groups?: { name: string; rules: { expr: string }[] }[] } | null)
          ?.groups ?? [],
    )
    .filter((group) => group.name === groupName)
    .flatMap((group) => group.rules.map((rule) => rule.expr));
  return new Set(
    expressions
      .flatMap((expr) => [...expr.matchAll(/\bby\s*\(([^)]*)\)/g)])
      .flatMap((match) => (match[1] ?? '').split(',').map((label) => label.trim()))
      .filter((label) => label !== '' && label !== 'le'),
  );
};

/** Prometheus anchors its relabelling regular expressions. */
const fullMatch = (regex: string | undefined, value: string) =>
  regex !== undefined && new RegExp(`^(?:${regex})$`).test(value);
/** A file glob of rule_files as a regular expression ("*" and "?" stay within a directory). */
const globPattern = (glob: string) =>
  new RegExp(
    `^${glob
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replaceAll('*', '[^/]*')
      .replaceAll('?', '[^/]')}$`,
  );
/** The rule files the chart ships (chart/files/prometheus/rules/*.yml). */
const ruleFiles = readdirSync(join(chartDirectory, 'files/prometheus/rules'))
  .filter((file) => file.endsWith('.yml'))
  .sort();

/**
 * Prometheus's configuration and its pod agree with the output: the configuration and every
 * rule file are mounted where --config.file and rule_files look, the TSDB is on the rendered
 * claim (or an emptyDir), and the scrape jobs name what the chart renders: the kube-state-metrics
 * Service and its port, the exporter's pod and port, the release's namespace, Traefik's. Both
 * Knative jobs write every label the secretid-knative rules group by.
 */
const prometheusProblems = ({ objects, values, namespace }: Render) => {
  const deployment = objects.find(
    (object) => object.kind === 'Deployment' && object.metadata.name.endsWith('-prometheus'),
  );
  if (!deployment) return [];
  const problems: string[] = [];
  const [pod] = podTemplates([deployment]) as [PodTemplate];
  const container = pod.template.spec?.containers.find((entry) => entry.name === 'prometheus');
  const flag = (name: string) =>
    (container?.args ?? []).find((arg) => arg.startsWith(`--${name}=`))?.split('=')[1];
  const configMap = byName(objects, 'ConfigMap', deployment.metadata.name);
  if (!container || !configMap) return ['no prometheus container or ConfigMap'];
  const data = (configMap.data ?? {}) as Record<string, string>;
  // Files: every key of the ConfigMap, mounted under the paths Prometheus reads.
  if (
    JSON.stringify(Object.keys(data).sort()) !==
    JSON.stringify(['prometheus.yml', ...ruleFiles].sort())
  )
    problems.push(`ConfigMap keys ${Object.keys(data)} are not prometheus.yml and ${ruleFiles}`);
  const volumes = pod.template.spec?.volumes ?? [];
  const paths = new Map<string, string>();
  for (const mount of container.volumeMounts ?? []) {
    const source = volumes.find((volume) => volume.name === mount.name)?.configMap;
    if (source?.name !== configMap.metadata.name) continue;
    const items = source.items ?? Object.keys(data).map((key) => ({ key, path: key }));
    for (const item of items) paths.set(item.key, posix.join(mount.mountPath, item.path));
  }
  for (const key of Object.keys(data).filter((key) => !paths.has(key)))
    problems.push(`ConfigMap key ${key} is not mounted in the prometheus container`);
  if (flag('config.file') !== paths.get('prometheus.yml'))
    problems.push(
      `--config.file ${flag('config.file')} is not where prometheus.yml is mounted (${paths.get('prometheus.yml')})`,
    );
  const config = parse(data['prometheus.yml'] ?? '') as {
    rule_files?: string[];
    scrape_configs: ScrapeJob[];
  };
  const globs = (config.rule_files ?? []).map((glob) => ({ glob, pattern: globPattern(glob) }));
  for (const file of ruleFiles) {
    const path = paths.get(file);
    if (path && !globs.some(({ pattern }) => pattern.test(path)))
      problems.push(`rule file ${file} is mounted at ${path}, which no rule_files glob finds`);
    const groups = (parse(data[file] ?? '') as { groups?: unknown[] } | null)?.groups;
    if (!Array.isArray(groups) || groups.length === 0)
      problems.push(`rule file ${file} has no groups`);
  }
  for (const { glob, pattern } of globs) {
    if (![...paths.values()].some((path) => pattern.test(path)))
      problems.push(`rule_files ${glob} finds no mounted file`);
  }
  // Storage: the rendered claim, or an emptyDir; mounted where --storage.tsdb.path points.
  const dataMount = (container.volumeMounts ?? []).find(
    (mount) => mount.mountPath === flag('storage.tsdb.path'),
  );
  const dataVolume = volumes.find((volume) => volume.name === dataMount?.name);
  if (valueAt(values, 'prometheus.storage.persistent')) {
    const claim = dataVolume?.persistentVolumeClaim?.claimName;
    if (!claim || !byName(objects, 'PersistentVolumeClaim', claim))
      problems.push(`the TSDB is not on a rendered claim (${claim})`);
  } else if (!dataVolume?.emptyDir) problems.push('the TSDB is not on an emptyDir');
  // Jobs.
  const jobs = new Map(config.scrape_configs.map((job) => [job.job_name, job]));
  const keep = (job: ScrapeJob | undefined, label: string) =>
    job?.relabel_configs?.find(
      (rule) => (rule.action ?? 'replace') === 'keep' && rule.source_labels?.[0] === label,
    )?.regex;
  const knative = valueAt(values, 'networkPolicy.knativeNamespaces') as string[];
  const traefik = stringValue(values, 'monitoring.traefikNamespace');
  for (const job of config.scrape_configs) {
    for (const name of job.kubernetes_sd_configs?.flatMap((sd) => sd.namespaces?.names ?? []) ??
      []) {
      if (name !== namespace && name !== traefik && !knative.includes(name))
        problems.push(`job ${job.job_name} discovers in namespace ${name}`);
    }
  }
  const namespacesOf = (name: string) =>
    jobs.get(name)?.kubernetes_sd_configs?.flatMap((sd) => sd.namespaces?.names ?? []) ?? [];
  // A job exists exactly when its source runs (MonitoringSourceMissing alerts on an empty one).
  const sourceRuns = {
    'kube-state-metrics': ofKind(objects, 'Service').some((service) =>
      service.metadata.name.endsWith('-kube-state-metrics'),
    ),
    'postgres-exporter': Boolean(findContainer(objects, 'StatefulSet', 'postgres-exporter')),
  };
  for (const [name, runs] of Object.entries(sourceRuns)) {
    if (runs !== jobs.has(name))
      problems.push(
        `job ${name} is ${jobs.has(name) ? '' : 'not '}configured, its source ${runs ? 'runs' : 'is off'}`,
      );
  }
  for (const name of [
    'secretid-functions',
    ...Object.entries(sourceRuns)
      .filter(([, runs]) => runs)
      .map(([name]) => name),
    'knative-queue-proxy',
  ]) {
    if (JSON.stringify(namespacesOf(name)) !== JSON.stringify([namespace]))
      problems.push(`job ${name} discovers in ${namespacesOf(name)}, not ${namespace}`);
  }
  if (JSON.stringify(namespacesOf('traefik')) !== JSON.stringify([traefik]))
    problems.push(`job traefik discovers in ${namespacesOf('traefik')}, not ${traefik}`);
  const traefikPort = `:${valueAt(values, 'monitoring.traefikMetricsPort')}`;
  if (
    !jobs
      .get('traefik')
      ?.relabel_configs?.some(
        (rule) => rule.target_label === '__address__' && rule.replacement?.endsWith(traefikPort),
      )
  )
    problems.push(`job traefik does not scrape port ${traefikPort}`);
  // Knative: the activator and the queue-proxy name a revision differently (or not at all), so
  // each job's relabelling writes the labels the rules aggregate by.
  const knativeLabels = groupingLabels(
    ruleFiles.map((file) => data[file] ?? ''),
    'secretid-knative',
  );
  if (knativeLabels.size === 0) problems.push('the secretid-knative rules group by no label');
  for (const name of ['knative-activator', 'knative-queue-proxy']) {
    const job = jobs.get(name);
    const written = new Set(
      [...(job?.relabel_configs ?? []), ...(job?.metric_relabel_configs ?? [])].map(
        (rule) => rule.target_label,
      ),
    );
    for (const label of knativeLabels) {
      if (!written.has(label))
        problems.push(
          `job ${name} writes no ${label} label, which the secretid-knative rules group by`,
        );
    }
  }
  // kube-state-metrics: the job keeps exactly the rendered Service, on one of its ports.
  const serviceRegex = keep(jobs.get('kube-state-metrics'), '__meta_kubernetes_service_name');
  const kept = ofKind(objects, 'Service').filter((service) =>
    fullMatch(serviceRegex, service.metadata.name),
  );
  const kubeStateMetrics = ofKind(objects, 'Service').find((service) =>
    service.metadata.name.endsWith('-kube-state-metrics'),
  );
  if (kubeStateMetrics && (kept.length !== 1 || kept[0] !== kubeStateMetrics))
    problems.push(
      `job kube-state-metrics keeps Services ${kept.map(describe)}, not ${kubeStateMetrics.metadata.name}`,
    );
  if (!kubeStateMetrics && kept.length > 0)
    problems.push(`job kube-state-metrics keeps ${kept.map(describe)} with kube-state-metrics off`);
  if (kubeStateMetrics) {
    const portRegex = keep(jobs.get('kube-state-metrics'), '__meta_kubernetes_endpoint_port_name');
    const ports = spec<{ ports: { name?: string }[] }>(kubeStateMetrics).ports;
    if (!ports.some((port) => fullMatch(portRegex, port.name ?? '')))
      problems.push(
        `job kube-state-metrics keeps port ${portRegex}, which Service ${kubeStateMetrics.metadata.name} does not have`,
      );
  }
  // The exporter: the job keeps the PostgreSQL pod (and only it) by component, and its port.
  const exporterJob = jobs.get('postgres-exporter');
  if (!exporterJob) return problems;
  const componentRegex = keep(
    exporterJob,
    '__meta_kubernetes_pod_label_app_kubernetes_io_component',
  );
  const portRegex = keep(exporterJob, '__meta_kubernetes_pod_container_port_name');
  const scraped = podTemplates(objects).filter(({ template }) =>
    fullMatch(
      componentRegex,
      podLabels({ template } as PodTemplate)['app.kubernetes.io/component'] ?? '',
    ),
  );
  if (scraped.length !== 1 || scraped[0]?.owner.kind !== 'StatefulSet')
    problems.push(`job postgres-exporter keeps ${scraped.map(({ owner }) => describe(owner))}`);
  const exporterOn = valueAt(values, 'postgresExporter.enabled');
  const exporterPorts = scraped.flatMap(({ template }) =>
    (template.spec?.containers ?? []).flatMap((entry) => entry.ports ?? []),
  );
  if (exporterOn && !exporterPorts.some((port) => fullMatch(portRegex, port.name ?? '')))
    problems.push(
      `job postgres-exporter keeps port ${portRegex}, which the PostgreSQL pod does not declare`,
    );
  return problems;
};

const checks = {
  'Services select rendered pods and target their ports': serviceProblems,
  'StatefulSets have a headless governing Service; selectors match their templates':
    workloadProblems,
  'Secrets, ConfigMaps, keys, claims and mounts that pods name exist': podReferenceProblems,
  'the claim binds the rendered NFS volume, reserved for that claim': volumeProblems,
  'probes point at declared container ports': probeProblems,
  'NetworkPolicies select existing pods and open their real ports': networkPolicyProblems,
  'IngressRoutes name rendered middlewares, TLS options, Secrets and Kourier': ingressRouteProblems,
  'basic-auth middlewares read a Secret of a shape Traefik accepts': middlewareProblems,
  'pods, ServiceAccounts, bindings and roles name each other': rbacProblems,
  'cluster-scoped objects carry the namespace in their names': clusterScopedProblems,
  'the exporter reads its own PostgreSQL as the monitor role, on its declared port':
    exporterProblems,
  "Prometheus's files are mounted where it reads them; its jobs name the rendered targets":
    prometheusProblems,
  'database clients use the PostgreSQL Service DNS name, port, database and role':
    databaseAddressProblems,
  'the environment the chart sets is what the API, seeder and role script read':
    environmentProblems,
};

for (const [title, check] of Object.entries(checks)) {
  test(title, (t) => {
    t.deepEqual(
      renders.flatMap((current) => check(current).map((problem) => `${current.label}: ${problem}`)),
      [],
    );
  });
}

test('the code-side name lists are not empty (the greps still find something)', (t) => {
  t.true(apiReads.has('DATABASE_URL') && apiReads.has('DB_POOL_MAX'), [...apiReads].join());
  t.true(
    seederReads.has('DATABASE_URL') && seederReads.has('READER_ROLE'),
    [...seederReads].join(),
  );
  t.true(
    ensureRolesReads.has('OWNER_PASSWORD') && ensureRolesReads.has('MONITOR_PASSWORD'),
    [...ensureRolesReads].join(),
  );
  t.true(ruleFiles.length > 0, 'chart/files/prometheus/rules holds no rule file');
});

test('the Prometheus TSDB is never on NFS: a claim of its own, or an emptyDir', (t) => {
  const nfs = renders.find((current) => current.label.startsWith('nfs as agency-7')) as Render;
  const { objects } = nfs;
  // PostgreSQL's data is on the NFS volume reserved for its claim...
  const volume = theObject(objects, 'PersistentVolume', '-postgres-data');
  t.truthy(spec<{ nfs?: object }>(volume).nfs);
  t.is(
    spec<{ volumeName?: string }>(theObject(objects, 'PersistentVolumeClaim', '-postgres-data'))
      .volumeName,
    volume.metadata.name,
  );
  // ...and Prometheus's claim names no volume, is reserved by none, and keeps the default
  // storage class: storageClassName "" would make it a candidate for classless static volumes
  // such as an NFS one.
  const claim = theObject(objects, 'PersistentVolumeClaim', '-prometheus');
  const claimSpec = spec<{ volumeName?: string; storageClassName?: string; selector?: object }>(
    claim,
  );
  t.is(claimSpec.volumeName, undefined);
  t.is(claimSpec.selector, undefined);
  t.not(claimSpec.storageClassName, '');
  t.deepEqual(
    ofKind(objects, 'PersistentVolume')
      .filter(
        (candidate) =>
          spec<{ claimRef?: { name?: string } }>(candidate).claimRef?.name === claim.metadata.name,
      )
      .map(describe),
    [],
  );
  const [prometheus] = podTemplates([theObject(objects, 'Deployment', '-prometheus')]);
  t.deepEqual(
    prometheus?.template.spec?.volumes?.find((entry) => entry.name === 'data')
      ?.persistentVolumeClaim,
    { claimName: claim.metadata.name },
  );
  // A storage class of its own when asked for.
  const classed = renderChart({
    valuesFiles: scenarioFiles.filter((file) => scenarioName(file) === 'nfs'),
    set: { 'prometheus.storage.storageClass': 'local-ssd' },
  });
  t.is(
    spec<{ storageClassName?: string }>(theObject(classed, 'PersistentVolumeClaim', '-prometheus'))
      .storageClassName,
    'local-ssd',
  );
  // Not persistent: an emptyDir and no claim.
  const ephemeral = renderChart({
    valuesFiles: scenarioFiles.filter((file) => scenarioName(file) === 'nfs'),
    set: { 'prometheus.storage.persistent': false },
  });
  t.false(
    ephemeral.some(
      (object) =>
        object.kind === 'PersistentVolumeClaim' && object.metadata.name.endsWith('-prometheus'),
    ),
  );
  const [pod] = podTemplates([theObject(ephemeral, 'Deployment', '-prometheus')]);
  t.deepEqual(pod?.template.spec?.volumes?.find((entry) => entry.name === 'data')?.emptyDir, {});
});

/** A copy of the NFS render (as agency-7) with some changes, to show that a check notices. */
const mutated = (change: (objects: RenderedObject[]) => void): Render => {
  const base = renders.find((current) => current.label.startsWith('nfs as agency-7')) as Render;
  const objects = structuredClone(base.objects);
  change(objects);
  return { ...base, objects };
};

/** Sets a path (dotted, or a list for keys with dots) in the object of a kind and name suffix. */
const change =
  (kind: string, suffix: string, path: string | string[], value: unknown) =>
  (objects: RenderedObject[]) => {
    const target = objects.find(
      (object) => object.kind === kind && object.metadata.name.endsWith(suffix),
    );
    const keys = typeof path === 'string' ? path.split('.') : [...path];
    const last = keys.pop() as string;
    const parent = keys.reduce<unknown>(
      (node, key) => (node as Record<string, unknown>)[key],
      target,
    ) as Record<string, unknown>;
    parent[last] = value;
  };
const postgresPod = 'spec.template.spec';
const apply =
  (...changes: ((objects: RenderedObject[]) => void)[]) =>
  (objects: RenderedObject[]) => {
    for (const one of changes) one(objects);
  };

/** Edits prometheus.yml in the Prometheus ConfigMap. */
const editConfig = (edit: (text: string) => string) => (objects: RenderedObject[]) => {
  const config = objects.find(
    (object) => object.kind === 'ConfigMap' && object.metadata.name.endsWith('-prometheus'),
  ) as RenderedObject;
  const data = config.data as Record<string, string>;
  data['prometheus.yml'] = edit(data['prometheus.yml'] ?? '');
};
/** Edits the items of Prometheus's config volume. */
const editItems =
  (edit: (items: { key: string; path: string }[]) => { key: string; path: string }[]) =>
  (objects: RenderedObject[]) => {
    const [pod] = podTemplates([theObject(objects, 'Deployment', '-prometheus')]);
    const volume = pod?.template.spec?.volumes?.find((entry) => entry.name === 'config');
    if (volume?.configMap) volume.configMap.items = edit(volume.configMap.items ?? []);
  };

const drift: [string, (objects: RenderedObject[]) => void, keyof typeof checks, RegExp][] = [
  [
    'a Service targets a port no container has',
    change('Service', '-postgres', 'spec.ports.0.targetPort', 'postgresql'),
    'Services select rendered pods and target their ports',
    /targetPort postgresql/,
  ],
  [
    'a Service selects a component nobody runs',
    change('Service', '-postgres', ['spec', 'selector', 'app.kubernetes.io/component'], 'db'),
    'Services select rendered pods and target their ports',
    /selects no pod template/,
  ],
  [
    'the StatefulSet names a Service that is not headless',
    change('StatefulSet', '-postgres', 'spec.serviceName', 'agency-7-secretid-postgres'),
    'StatefulSets have a headless governing Service; selectors match their templates',
    /is not headless/,
  ],
  [
    'a secretKeyRef names a key the Secret lacks',
    change('Secret', '-credentials', 'data', { 'superuser-password': 'eA==' }),
    'Secrets, ConfigMaps, keys, claims and mounts that pods name exist',
    /has no key owner-password/,
  ],
  [
    'a volume names a claim that is not rendered',
    change(
      'StatefulSet',
      '-postgres',
      `${postgresPod}.volumes.0.persistentVolumeClaim.claimName`,
      'data',
    ),
    'Secrets, ConfigMaps, keys, claims and mounts that pods name exist',
    /claim data is not rendered/,
  ],
  [
    'the NFS volume is reserved for another claim',
    change('PersistentVolume', '-postgres-data', 'spec.claimRef.namespace', 'default'),
    'the claim binds the rendered NFS volume, reserved for that claim',
    /claimRef/,
  ],
  [
    'a probe points at an undeclared port',
    change(
      'StatefulSet',
      '-postgres',
      `${postgresPod}.containers.0.livenessProbe.tcpSocket.port`,
      'pg',
    ),
    'probes point at declared container ports',
    /livenessProbe port pg/,
  ],
  [
    'a NetworkPolicy selects a component nobody runs',
    change(
      'NetworkPolicy',
      '-postgres',
      ['spec', 'podSelector', 'matchLabels', 'app.kubernetes.io/component'],
      'database',
    ),
    'NetworkPolicies select existing pods and open their real ports',
    /podSelector selects no pod/,
  ],
  [
    'a NetworkPolicy opens a port PostgreSQL does not listen on',
    change('NetworkPolicy', '-postgres', 'spec.ingress.0.ports.0.port', 5433),
    'NetworkPolicies select existing pods and open their real ports',
    /port 5433 is not a port/,
  ],
  [
    'an IngressRoute names a missing middleware and TLS option',
    apply(
      change('IngressRoute', '-functions', 'spec.routes.0.middlewares.0.name', 'headers'),
      change('IngressRoute', '-functions', 'spec.tls.options', { name: 'modern' }),
    ),
    'IngressRoutes name rendered middlewares, TLS options, Secrets and Kourier',
    /middleware headers[\s\S]*TLSOption modern/,
  ],
  [
    'an IngressRoute sends traffic to a Kourier port the values do not name',
    change('IngressRoute', '-functions', 'spec.routes.1.services.0.port', 8080),
    'IngressRoutes name rendered middlewares, TLS options, Secrets and Kourier',
    /is not Kourier/,
  ],
  [
    'the seed Job connects to the wrong port',
    change(
      'Job',
      '-seed',
      `${postgresPod}.initContainers.1.env.0.value`,
      'postgres://secretid_owner@agency-7-secretid-postgres.field-ops.svc:5433/secretid',
    ),
    'database clients use the PostgreSQL Service DNS name, port, database and role',
    /seed Job: DATABASE_URL .*:5433/,
  ],
  [
    'the scrape policy opens a port none of its pods has',
    change('NetworkPolicy', '-allow-scrape', 'spec.ingress.0.ports.2.port', 9999),
    'NetworkPolicies select existing pods and open their real ports',
    /port 9999 is not a port of any pod it opens/,
  ],
  [
    'the scrape policy selects PostgreSQL without opening the exporter port',
    change('NetworkPolicy', '-allow-scrape', 'spec.ingress.0.ports', [
      { protocol: 'TCP', port: 8080 },
      { protocol: 'TCP', port: 9091 },
    ]),
    'NetworkPolicies select existing pods and open their real ports',
    /opens StatefulSet\/agency-7-secretid-postgres on none of its ports/,
  ],
  [
    'a policy still names the exporter as a separate component',
    change('NetworkPolicy', '-database-clients', 'spec.podSelector.matchExpressions.2.values', [
      'api',
      'seed',
      'backup',
      'postgres-exporter',
    ]),
    'NetworkPolicies select existing pods and open their real ports',
    /names component postgres-exporter, which nothing runs/,
  ],
  [
    "the Prometheus route sends traffic to a port its Service doesn't have",
    change('IngressRoute', '-prometheus', 'spec.routes.0.services.0.port', 9091),
    'IngressRoutes name rendered middlewares, TLS options, Secrets and Kourier',
    /Service agency-7-secretid-prometheus has no port 9091/,
  ],
  [
    'basic auth reads an Opaque Secret of more than one key (Traefik drops the route)',
    change('Secret', '-prometheus-basic-auth', 'type', 'Opaque'),
    'basic-auth middlewares read a Secret of a shape Traefik accepts',
    /not of a shape Traefik reads \(type Opaque, keys password, username\)/,
  ],
  [
    'basic auth reads a Secret that is not rendered',
    change('Middleware', '-prometheus-auth', 'spec.basicAuth.secret', 'prometheus-users'),
    'basic-auth middlewares read a Secret of a shape Traefik accepts',
    /basicAuth Secret prometheus-users is not rendered/,
  ],
  [
    'a pod runs as a ServiceAccount that is not rendered',
    change('Deployment', '-kube-state-metrics', `${postgresPod}.serviceAccountName`, 'default'),
    'pods, ServiceAccounts, bindings and roles name each other',
    /ServiceAccount default is not rendered[\s\S]*kube-state-metrics: no pod uses it/,
  ],
  [
    "a binding's subject lives in another namespace",
    change('ClusterRoleBinding', '-prometheus', 'subjects.0.namespace', 'default'),
    'pods, ServiceAccounts, bindings and roles name each other',
    /subject ServiceAccount default\/agency-7-secretid-prometheus is not a rendered ServiceAccount of field-ops/,
  ],
  [
    'a binding refers to a role the chart does not render',
    change('ClusterRoleBinding', '-prometheus', 'roleRef.name', 'cluster-admin'),
    'pods, ServiceAccounts, bindings and roles name each other',
    /ClusterRole cluster-admin is not rendered[\s\S]*ClusterRole\/field-ops-agency-7-secretid-prometheus: no binding uses it/,
  ],
  [
    'a ClusterRole named without the namespace',
    change('ClusterRole', '-prometheus', 'metadata.name', 'agency-7-secretid-prometheus'),
    'cluster-scoped objects carry the namespace in their names',
    /ClusterRole\/agency-7-secretid-prometheus: not named field-ops-agency-7-secretid-\*/,
  ],
  [
    'the exporter connects as the reader role',
    change(
      'StatefulSet',
      '-postgres',
      `${postgresPod}.containers.1.env.1.value`,
      'secretid_reader',
    ),
    'the exporter reads its own PostgreSQL as the monitor role, on its declared port',
    /DATA_SOURCE_USER is secretid_reader, not secretid_monitor/,
  ],
  [
    "the exporter reads the reader's password",
    change(
      'StatefulSet',
      '-postgres',
      `${postgresPod}.containers.1.env.2.valueFrom.secretKeyRef.key`,
      'reader-password',
    ),
    'the exporter reads its own PostgreSQL as the monitor role, on its declared port',
    /DATA_SOURCE_PASS key reader-password[\s\S]*not the one ensure-roles sets/,
  ],
  [
    'the exporter listens on another port than it declares',
    change(
      'StatefulSet',
      '-postgres',
      `${postgresPod}.containers.1.args.0`,
      '--web.listen-address=:9100',
    ),
    'the exporter reads its own PostgreSQL as the monitor role, on its declared port',
    /listens on --web.listen-address=:9100, not :9187/,
  ],
  [
    'the kube-state-metrics job keeps a Service the chart does not render',
    editConfig((text) =>
      text.replace('"agency-7-secretid-kube-state-metrics"', '"kube-state-metrics"'),
    ),
    "Prometheus's files are mounted where it reads them; its jobs name the rendered targets",
    /job kube-state-metrics keeps Services , not agency-7-secretid-kube-state-metrics/,
  ],
  [
    'a job discovers in a namespace the values do not name',
    editConfig((text) => text.replace('names: ["field-ops"]', 'names: ["default"]')),
    "Prometheus's files are mounted where it reads them; its jobs name the rendered targets",
    /job secretid-functions discovers in namespace default/,
  ],
  [
    'a rule file is not mounted',
    editItems((items) => items.filter((item) => item.key === 'prometheus.yml')),
    "Prometheus's files are mounted where it reads them; its jobs name the rendered targets",
    /ConfigMap key .*\.yml is not mounted[\s\S]*rule_files \/etc\/prometheus\/rules\/\*\.yml finds no mounted file/,
  ],
  [
    'the rule files are mounted where rule_files does not look',
    editItems((items) =>
      items.map((item) => ({ ...item, path: item.path.replace(/^rules\//, 'alerts/') })),
    ),
    "Prometheus's files are mounted where it reads them; its jobs name the rendered targets",
    /rule file .* is mounted at \/etc\/prometheus\/alerts\/.*, which no rule_files glob finds/,
  ],
  [
    '--config.file points at a file that is not mounted',
    change(
      'Deployment',
      '-prometheus',
      `${postgresPod}.containers.0.args.0`,
      '--config.file=/etc/prometheus/config.yml',
    ),
    "Prometheus's files are mounted where it reads them; its jobs name the rendered targets",
    /--config.file \/etc\/prometheus\/config.yml is not where prometheus.yml is mounted/,
  ],
  [
    'the API ConfigMap sets a variable the API never reads',
    change('ConfigMap', '-api-env', 'data.DB_POOL_SIZE', '4'),
    'the environment the chart sets is what the API, seeder and role script read',
    /DB_POOL_SIZE is not read/,
  ],
];

for (const [what, broken, title, expected] of drift) {
  test(`drift is caught: ${what}`, (t) => {
    t.regex(checks[title](mutated(broken)).join('\n'), expected);
  });
}
