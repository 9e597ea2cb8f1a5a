/**
 * The chart renders and lints in every chart/ci scenario, as two different installations,
 * and every object it renders passes its Kubernetes or CRD schema.
 */
import * as certManager from '@kubernetes-models/cert-manager/cert-manager.io/v1';
import * as traefik from '@kubernetes-models/traefik/traefik.io/v1alpha1';
import test from 'ava';
import * as apps from 'kubernetes-models/apps/v1';
import * as batch from 'kubernetes-models/batch/v1';
import * as networking from 'kubernetes-models/networking.k8s.io/v1';
import * as policy from 'kubernetes-models/policy/v1';
import * as rbac from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import * as core from 'kubernetes-models/v1';
import { parse } from 'yaml';
import {
  chartName,
  clusterScopedKinds,
  describe,
  effectiveValues,
  helmLint,
  installations,
  ofKind,
  podTemplates,
  type RenderedObject,
  renderChart,
  renderFailure,
  scenarioFiles,
  scenarioName,
  stringValue,
  theObject,
  valueAt,
} from './helpers/helm.ts';

type Validator = new (data: unknown) => { validate(): void };

/**
 * Schema models by "apiVersion kind", built from whole API groups: Kubernetes core (with
 * ServiceAccount), apps, batch, networking, policy and rbac.authorization.k8s.io (ClusterRole,
 * ClusterRoleBinding), Traefik's traefik.io/v1alpha1 and cert-manager's v1. A kind outside
 * these groups has no entry and fails the suite until its models are added here.
 */
const validators = new Map<string, Validator>();
for (const group of [core, apps, batch, networking, policy, rbac, traefik, certManager]) {
  for (const model of Object.values(group) as unknown[]) {
    const { apiVersion, kind } = (model ?? {}) as { apiVersion?: unknown; kind?: unknown };
    if (typeof model === 'function' && typeof apiVersion === 'string' && typeof kind === 'string') {
      validators.set(`${apiVersion} ${kind}`, model as Validator);
    }
  }
}

/** Schema problems of one object; a kind without a model is a problem too. */
const schemaProblems = (object: RenderedObject): string[] => {
  const Model = validators.get(`${object.apiVersion} ${object.kind}`);
  if (!Model)
    return [`${describe(object)}: no schema model for ${object.apiVersion} ${object.kind}`];
  try {
    new Model(object).validate();
    return [];
  } catch (error) {
    return [`${describe(object)}: ${(error as Error).message}`];
  }
};

const dnsLabel = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const dns1035Label = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;

/** Object names and label values Kubernetes accepts. */
const nameProblems = (objects: RenderedObject[]) => {
  const problems: string[] = [];
  const seen = new Set<string>();
  for (const object of objects) {
    const { name, labels = {} } = object.metadata;
    if (!dnsLabel.test(name) || name.length > 63)
      problems.push(`${describe(object)}: name is not a DNS label`);
    if (object.kind === 'Service' && !dns1035Label.test(name)) {
      problems.push(`${describe(object)}: a Service name must start with a letter`);
    }
    if (seen.has(`${object.kind}/${name}`)) problems.push(`${describe(object)}: rendered twice`);
    seen.add(`${object.kind}/${name}`);
    for (const [key, value] of Object.entries(labels)) {
      if (value.length > 63 || !/^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/.test(value)) {
        problems.push(`${describe(object)}: label ${key}=${value} is not a valid label value`);
      }
    }
  }
  return problems;
};

/** Calls visit for every string in a tree, with the key it sits under. */
const eachString = (node: unknown, visit: (value: string, key: string) => void, key = '') => {
  if (typeof node === 'string') visit(node, key);
  else if (Array.isArray(node)) for (const item of node) eachString(item, visit, key);
  else if (node && typeof node === 'object') {
    for (const [childKey, child] of Object.entries(node)) eachString(child, visit, childKey);
  }
};

/** Label maps of an object: its own, selectors' and pod templates', wherever they sit. */
const eachLabelMap = (node: unknown, visit: (labels: Record<string, unknown>) => void) => {
  if (Array.isArray(node)) for (const item of node) eachLabelMap(item, visit);
  else if (node && typeof node === 'object') {
    for (const [key, child] of Object.entries(node)) {
      if (
        (key === 'labels' || key === 'matchLabels' || key === 'selector') &&
        child &&
        typeof child === 'object' &&
        !Array.isArray(child)
      ) {
        const values = Object.values(child);
        if (values.every((value) => typeof value === 'string'))
          visit(child as Record<string, unknown>);
      }
      eachLabelMap(child, visit);
    }
  }
};

/**
 * The configuration files a ConfigMap carries (prometheus.yml, rule files, dashboards), parsed,
 * so that the checks below read their fields with their keys instead of one long string, and
 * without their comments. A file that does not parse is reported. Prometheus's job names, rule
 * group names and a Grafana dashboard's uid go to `identifiers`: they are the same in every
 * release by design (the rules and the dashboard select series by job; the dashboard picks its
 * Prometheus with a datasource variable, so every release ships the same dashboard), and they
 * name no Kubernetes object.
 */
const withEmbeddedFiles = (
  object: RenderedObject,
  problems: string[],
  identifiers: Set<string>,
): RenderedObject => {
  if (object.kind !== 'ConfigMap') return object;
  const data = { ...((object.data ?? {}) as Record<string, string>) } as Record<string, unknown>;
  for (const [key, text] of Object.entries(data)) {
    if (typeof text !== 'string' || !/\.(ya?ml|json)$/.test(key)) continue;
    try {
      const file = key.endsWith('.json') ? JSON.parse(text) : parse(text);
      const {
        scrape_configs: jobs = [],
        groups = [],
        uid,
      } = (file ?? {}) as {
        scrape_configs?: { job_name: string }[];
        groups?: { name: string }[];
        uid?: string;
      };
      for (const job of jobs) identifiers.add(job.job_name);
      for (const group of groups) identifiers.add(group.name);
      if (key.endsWith('.json') && typeof uid === 'string') identifiers.add(uid);
      data[key] = file;
    } catch (error) {
      problems.push(`${describe(object)}: ${key} does not parse: ${(error as Error).message}`);
    }
  }
  return { ...object, data };
};

/**
 * Traces of a hard-coded release name or namespace in a render made as `release` in
 * `namespace`: every object name derives from the release, every label names the release
 * or the chart, and every namespace the output mentions is the release's or one the values
 * name as external (Kourier's, Traefik's, the DNS service's, Knative's).
 */
const installationProblems = (
  objects: RenderedObject[],
  release: string,
  namespace: string,
  externalNamespaces: string[],
  givenNames: Set<string> = new Set(),
) => {
  const problems: string[] = [];
  const fullname = release.includes(chartName) ? release : `${release}-${chartName}`;
  const allowedNamespaces = new Set([namespace, ...externalNamespaces]);
  const identifiers = new Set<string>();
  const expanded = objects.map((object) => withEmbeddedFiles(object, problems, identifiers));
  // Longest first, so that an identifier inside another is not removed from it first.
  const byLength = [...identifiers].sort((a, b) => b.length - a.length);
  const withoutIdentifiers = (value: string) =>
    byLength.reduce((text, identifier) => text.replaceAll(identifier, ''), value);
  for (const object of expanded) {
    const where = describe(object);
    const { name } = object.metadata;
    // The one fixed name: Traefik's default TLS options are the TLSOption called "default".
    const traefikDefault = object.kind === 'TLSOption' && name === 'default';
    if (!name.includes(fullname) && !traefikDefault)
      problems.push(`${where}: name does not derive from the release`);
    if (clusterScopedKinds.includes(object.kind) && !name.includes(namespace)) {
      problems.push(`${where}: a cluster-scoped name must carry the namespace`);
    }
    if (name.replaceAll(fullname, '').includes(chartName)) {
      problems.push(`${where}: name holds "${chartName}" outside the release's prefix`);
    }
    if (object.metadata.namespace !== undefined && object.metadata.namespace !== namespace) {
      problems.push(`${where}: metadata.namespace is ${object.metadata.namespace}`);
    }
    eachLabelMap(object, (labels) => {
      for (const [key, value] of Object.entries(labels as Record<string, string>)) {
        if (key === 'app.kubernetes.io/instance' && value !== release) {
          problems.push(`${where}: label ${key}=${value}, not the release`);
        } else if (key === 'app.kubernetes.io/name' || key === 'app.kubernetes.io/part-of') {
          if (value !== chartName) problems.push(`${where}: label ${key}=${value}`);
        } else if (key === 'helm.sh/chart') {
          if (!value.startsWith(`${chartName}-`)) problems.push(`${where}: label ${key}=${value}`);
        } else if (key === 'kubernetes.io/metadata.name') {
          if (!allowedNamespaces.has(value)) problems.push(`${where}: selects namespace ${value}`);
        } else if (value.replaceAll(fullname, '').includes(`${chartName}-`)) {
          problems.push(`${where}: label ${key}=${value} hard-codes a name`);
        }
      }
    });
    eachString(object, (value, key) => {
      // "names" is where Prometheus's Kubernetes discovery lists its namespaces.
      if ((key === 'namespace' || key === 'names') && !allowedNamespaces.has(value)) {
        problems.push(`${where}: namespace ${value} is neither the release's nor an external one`);
      }
      for (const match of value.matchAll(/([a-z0-9-]+)\.([a-z0-9-]+)\.svc\b/g)) {
        // Another namespace only for a Service the values name there (Traefik's, say).
        const external =
          allowedNamespaces.has(match[2] as string) && givenNames.has(match[1] as string);
        if (match[2] !== namespace && !external)
          problems.push(`${where}: DNS name ${match[0]} in another namespace`);
        // The Knative Services are named by values (hosts.api), not by the release.
        const service = match[0].split('.')[0] ?? '';
        if (!match[0].startsWith(fullname) && !givenNames.has(service))
          problems.push(`${where}: DNS name ${match[0]} hard-codes a Service`);
      }
      // Images and names taken from the values (an issuer, an existing Secret) are given, and
      // so are Prometheus's job and rule group names and the dashboard's uid, also inside a
      // PromQL expression (see withEmbeddedFiles).
      const given = key === 'image' || key === 'helm.sh/chart' || givenNames.has(value);
      if (!given && withoutIdentifiers(value).replaceAll(fullname, '').includes(`${chartName}-`)) {
        problems.push(`${where}: ${key} "${value.slice(0, 80)}" hard-codes a name`);
      }
    });
  }
  return problems;
};

for (const file of scenarioFiles) {
  const scenario = scenarioName(file);

  test(`helm lint --strict passes: ${scenario}`, (t) => {
    const { status, output } = helmLint(file);
    t.is(status, 0, output);
    t.regex(output, /1 chart\(s\) linted, 0 chart\(s\) failed/);
  });

  for (const { release, namespace } of installations) {
    test(`${scenario} as ${release} in ${namespace}: valid objects, nothing hard-coded`, (t) => {
      const objects = renderChart({ release, namespace, valuesFiles: [file] });
      t.true(objects.length > 10, `only ${objects.length} objects rendered`);
      t.deepEqual(objects.flatMap(schemaProblems), []);
      t.deepEqual(nameProblems(objects), []);
      const values = effectiveValues({ valuesFiles: [file] });
      const externalNamespaces = [
        stringValue(values, 'edge.kourier.namespace'),
        stringValue(values, 'networkPolicy.dnsNamespace'),
        stringValue(values, 'monitoring.traefikNamespace'),
        ...(valueAt(values, 'networkPolicy.knativeNamespaces') as string[]),
      ];
      const givenNames = new Set<string>();
      eachString(values, (value) => givenNames.add(value));
      t.deepEqual(
        installationProblems(objects, release, namespace, externalNamespaces, givenNames),
        [],
      );
    });
  }
}

test('a 53-character release name (helm maximum) still gives valid, distinct names', (t) => {
  const release = 'agency-of-very-long-names-for-the-secret-identities-7';
  t.is(release.length, 53);
  const objects = renderChart({
    release,
    namespace: 'field-ops',
    valuesFiles: scenarioFiles.filter((file) => scenarioName(file) === 'nfs'),
  });
  t.deepEqual(nameProblems(objects), []);
  t.deepEqual(objects.flatMap(schemaProblems), []);
});

/** The names of the cluster-scoped objects of a render. */
const clusterScopedNames = (objects: RenderedObject[]) =>
  objects
    .filter((object) => clusterScopedKinds.includes(object.kind))
    .map((object) => `${object.kind}/${object.metadata.name}`);

test('cluster-scoped names carry the namespace: releases in two namespaces never collide', (t) => {
  const nfs = scenarioFiles.filter((file) => scenarioName(file) === 'nfs');
  const long = 'agency-of-very-long-names-for-the-secret-identities-7';
  for (const release of ['secretid', 'agency-7', long]) {
    const [first, second] = ['default', 'field-ops'].map((namespace) => {
      const objects = renderChart({ release, namespace, valuesFiles: nfs });
      const names = clusterScopedNames(objects);
      t.deepEqual(
        names.map((name) => name.split('/')[0]).sort(),
        [
          'ClusterRole',
          'ClusterRole',
          'ClusterRoleBinding',
          'ClusterRoleBinding',
          'PersistentVolume',
        ],
        `${release} in ${namespace}`,
      );
      for (const name of names) t.true(name.split('/')[1]?.includes(namespace), name);
      return names;
    }) as [string[], string[]];
    t.deepEqual(
      first.filter((name) => second.includes(name)),
      [],
      `${release}: shared cluster-scoped names`,
    );
  }
});

test('cluster-scoped names stay distinct when they must be shortened', (t) => {
  const nfs = scenarioFiles.filter((file) => scenarioName(file) === 'nfs');
  // Two 53-character releases that differ only in their last character, in one namespace.
  const [seven, eight] = ['7', '8'].map((last) =>
    clusterScopedNames(
      renderChart({
        release: `agency-of-very-long-names-for-the-secret-identities-${last}`,
        namespace: 'field-ops',
        valuesFiles: nfs,
      }),
    ),
  ) as [string[], string[]];
  t.deepEqual(
    seven.filter((name) => eight.includes(name)),
    [],
  );
  // A namespace of 63 characters leaves no room for the release: the component part and the
  // hash keep Prometheus's and kube-state-metrics' roles apart all the same.
  const namespace = `field-ops-${'x'.repeat(53)}`;
  t.is(namespace.length, 63);
  const objects = renderChart({ release: 'agency-7', namespace, valuesFiles: nfs });
  t.deepEqual(nameProblems(objects), []);
  t.is(new Set(clusterScopedNames(objects)).size, 5);
  for (const object of objects.filter((candidate) => candidate.kind.startsWith('Cluster'))) {
    t.regex(object.metadata.name, /-(prometheus|kube-state-metrics)$/);
  }
});

/** Objects of the monitoring parts, told apart by their component label. */
const monitoringComponents = new Set(['prometheus', 'kube-state-metrics', 'dashboard']);
const monitoringObjects = (objects: RenderedObject[]) =>
  objects.filter((object) =>
    monitoringComponents.has(object.metadata.labels?.['app.kubernetes.io/component'] ?? ''),
  );
const containerNames = (objects: RenderedObject[]) =>
  podTemplates(ofKind(objects, 'StatefulSet')).flatMap(({ template }) =>
    (template.spec?.containers ?? []).map((container) => container.name),
  );

test('monitoring switched off renders none of its objects; each part switches alone', (t) => {
  const off = renderChart({ set: { 'monitoring.enabled': false } });
  t.deepEqual(off.flatMap(schemaProblems), []);
  t.deepEqual(monitoringObjects(off).map(describe), []);
  t.deepEqual(
    off
      .filter((object) =>
        ['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Deployment'].includes(object.kind),
      )
      .map(describe),
    [],
  );
  t.false(off.some((object) => object.metadata.name.endsWith('-allow-scrape')));
  t.deepEqual(containerNames(off), ['postgres']);
  const all = renderChart();
  t.deepEqual(containerNames(all), ['postgres', 'postgres-exporter']);
  for (const [part, component] of [
    ['prometheus', 'prometheus'],
    ['kubeStateMetrics', 'kube-state-metrics'],
    ['grafanaDashboard', 'dashboard'],
  ] as const) {
    const objects = renderChart({ set: { [`${part}.enabled`]: false } });
    t.deepEqual(objects.flatMap(schemaProblems), [], part);
    const components = new Set(
      monitoringObjects(objects).map(
        (object) => object.metadata.labels?.['app.kubernetes.io/component'],
      ),
    );
    t.false(components.has(component), `${part}.enabled=false still renders ${component}`);
    t.is(components.size, monitoringComponents.size - 1, part);
  }
  const noExporter = renderChart({ set: { 'postgresExporter.enabled': false } });
  t.deepEqual(containerNames(noExporter), ['postgres']);
  t.is(monitoringObjects(noExporter).length, monitoringObjects(all).length);
});

test('optional parts switched off still render valid objects', (t) => {
  const objects = renderChart({
    set: { 'seed.enabled': false, 'edge.enabled': false, 'networkPolicy.enabled': false },
  });
  t.deepEqual(objects.flatMap(schemaProblems), []);
  const kinds = new Set(objects.map((object) => object.kind));
  for (const kind of ['Job', 'IngressRoute', 'Middleware', 'TLSOption', 'NetworkPolicy']) {
    t.false(kinds.has(kind), `${kind} rendered although switched off`);
  }
  t.false(objects.some((object) => object.metadata.name.endsWith('-tls')));
  t.true(kinds.has('StatefulSet'));
});

test('the checks fire: an unknown kind, a schema error and a hard-coded name are reported', (t) => {
  const objects = renderChart({ release: 'agency-7', namespace: 'field-ops' });
  const rogue = {
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'ServiceMonitor',
    metadata: { name: 'agency-7-secretid-rogue' },
  };
  t.deepEqual(schemaProblems(rogue), [
    'ServiceMonitor/agency-7-secretid-rogue: no schema model for monitoring.coreos.com/v1 ServiceMonitor',
  ]);
  const role = objects.find((object) => object.kind === 'ClusterRole') as RenderedObject;
  const badRole = structuredClone(role);
  (badRole.rules as { verbs: unknown }[])[0] = { verbs: 'get' };
  t.regex(schemaProblems(badRole).join(), /verbs must be array/);
  const statefulSet = objects.find((object) => object.kind === 'StatefulSet') as RenderedObject;
  const broken = structuredClone(statefulSet);
  (broken.spec as { replicas: unknown }).replicas = 'one';
  t.regex(schemaProblems(broken).join(), /replicas must be integer/);
  const hardCoded = structuredClone(statefulSet);
  (hardCoded.spec as { serviceName: string }).serviceName = 'secretid-postgres-headless';
  (hardCoded.metadata.labels as Record<string, string>)['app.kubernetes.io/instance'] = 'secretid';
  const problems = installationProblems([hardCoded], 'agency-7', 'field-ops', []);
  t.true(problems.some((problem) => problem.includes('serviceName "secretid-postgres-headless"')));
  t.true(problems.some((problem) => problem.includes('app.kubernetes.io/instance=secretid')));
  const elsewhere = structuredClone(
    objects.find((object) => object.kind === 'Job') as RenderedObject,
  );
  const text = JSON.stringify(elsewhere).replaceAll('.field-ops.svc', '.default.svc');
  t.true(
    installationProblems([JSON.parse(text)], 'agency-7', 'field-ops', []).some((problem) =>
      problem.includes('in another namespace'),
    ),
  );
  // Inside prometheus.yml: another namespace to discover, a hard-coded Service to keep.
  const config = structuredClone(
    objects.find(
      (object) => object.kind === 'ConfigMap' && object.metadata.name.endsWith('-prometheus'),
    ) as RenderedObject,
  );
  const data = config.data as Record<string, string>;
  data['prometheus.yml'] = (data['prometheus.yml'] ?? '')
    .replace('names: ["field-ops"]', 'names: ["default"]')
    .replace('"agency-7-secretid-kube-state-metrics"', '"secretid-kube-state-metrics"');
  const inConfig = installationProblems([config], 'agency-7', 'field-ops', []).join('\n');
  t.regex(inConfig, /namespace default is neither/);
  t.regex(inConfig, /regex "secretid-kube-state-metrics" hard-codes a name/);
  // A ClusterRole named without the namespace.
  const unscoped = structuredClone(role);
  unscoped.metadata.name = unscoped.metadata.name.replace('field-ops-', '');
  t.regex(
    installationProblems([unscoped], 'agency-7', 'field-ops', []).join(),
    /a cluster-scoped name must carry the namespace/,
  );
});

test("the backup CronJobs' time zone is kube-state-metrics' too: both from backup.timeZone", (t) => {
  for (const zone of [undefined, 'Asia/Kolkata']) {
    const objects = renderChart(zone ? { set: { 'backup.timeZone': zone } } : {});
    const expected = zone ?? 'Etc/UTC';
    const cronJobs = ofKind(objects, 'CronJob');
    t.is(cronJobs.length, 2);
    for (const cronJob of cronJobs) {
      t.is((cronJob.spec as { timeZone?: string }).timeZone, expected, describe(cronJob));
    }
    const metrics = podTemplates(objects).find(
      ({ owner }) =>
        owner.kind === 'Deployment' && owner.metadata.name.endsWith('-kube-state-metrics'),
    );
    const env = metrics?.template.spec?.containers[0]?.env ?? [];
    t.deepEqual(
      env.filter(({ name }) => name === 'TZ').map(({ value }) => value),
      [expected],
    );
  }
  const refused = renderFailure({ set: { 'backup.timeZone': 'Mars Standard' } });
  t.not(refused.status, 0);
  t.regex(refused.stderr, /backup\/timeZone/);
});

test('the probe job: interval and timeout as set, and an interval shorter than the scrape timeout refused', (t) => {
  const job = (objects: RenderedObject[]) => {
    const config = theObject(objects, 'ConfigMap', '-prometheus').data as Record<string, string>;
    return (
      parse(config['prometheus.yml'] as string) as {
        scrape_configs: { job_name: string; scrape_interval: string; scrape_timeout: string }[];
      }
    ).scrape_configs.find((entry) => entry.job_name === 'secretid-probe');
  };
  t.like(job(renderChart()), { scrape_interval: '4m', scrape_timeout: '35s' });
  t.like(job(renderChart({ set: { 'probe.interval': '90s', 'probe.timeoutSeconds': 10 } })), {
    scrape_interval: '90s',
    scrape_timeout: '15s',
  });
  t.is(job(renderChart({ set: { 'probe.enabled': false } })), undefined);
  const refused = renderFailure({ set: { 'probe.interval': '20s' } });
  t.not(refused.status, 0);
  t.regex(
    refused.stderr,
    /probe\.interval \(20s\) must be at least probe\.timeoutSeconds plus 5 s/,
  );
});

test("postgres.priorityClassName reaches PostgreSQL's pod only, and none is set by default", (t) => {
  const classes = (objects: RenderedObject[]) =>
    podTemplates(objects).flatMap(({ owner, template }) =>
      template.spec?.priorityClassName ? [`${owner.kind}:${template.spec.priorityClassName}`] : [],
    );
  t.deepEqual(classes(renderChart()), []);
  t.deepEqual(classes(renderChart({ set: { 'postgres.priorityClassName': 'database-high' } })), [
    'StatefulSet:database-high',
  ]);
  t.not(renderFailure({ set: { 'postgres.priorityClassName': 'Not A Name' } }).status, 0);
});
