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
import * as core from 'kubernetes-models/v1';
import {
  chartName,
  describe,
  effectiveValues,
  helmLint,
  installations,
  type RenderedObject,
  renderChart,
  scenarioFiles,
  scenarioName,
  stringValue,
  valueAt,
} from './helpers/helm.ts';

type Validator = new (data: unknown) => { validate(): void };

/**
 * Schema models by "apiVersion kind", built from whole API groups: Kubernetes core, apps,
 * batch, networking and policy, Traefik's traefik.io/v1alpha1 and cert-manager's v1. A kind
 * outside these groups has no entry and fails the suite until its models are added here.
 */
const validators = new Map<string, Validator>();
for (const group of [core, apps, batch, networking, policy, traefik, certManager]) {
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
  for (const object of objects) {
    const where = describe(object);
    const { name } = object.metadata;
    if (!name.includes(fullname)) problems.push(`${where}: name does not derive from the release`);
    if (object.kind === 'PersistentVolume' && !name.includes(namespace)) {
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
      if (key === 'namespace' && !allowedNamespaces.has(value)) {
        problems.push(`${where}: namespace ${value} is neither the release's nor an external one`);
      }
      for (const match of value.matchAll(/[a-z0-9-]+\.([a-z0-9-]+)\.svc\b/g)) {
        if (match[1] !== namespace)
          problems.push(`${where}: DNS name ${match[0]} in another namespace`);
        // The Knative Services are named by values (hosts.api), not by the release.
        const service = match[0].split('.')[0] ?? '';
        if (!match[0].startsWith(fullname) && !givenNames.has(service))
          problems.push(`${where}: DNS name ${match[0]} hard-codes a Service`);
      }
      // Images and names taken from the values (an issuer, an existing Secret) are given.
      const given = key === 'image' || key === 'helm.sh/chart' || givenNames.has(value);
      if (!given && value.replaceAll(fullname, '').includes(`${chartName}-`)) {
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
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'Role',
    metadata: { name: 'agency-7-secretid-rogue' },
  };
  t.deepEqual(schemaProblems(rogue), [
    'Role/agency-7-secretid-rogue: no schema model for rbac.authorization.k8s.io/v1 Role',
  ]);
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
});
