/**
 * Renders and lints the Helm chart with the real helm binary, and the small pieces of
 * Kubernetes semantics the chart suites share: label selectors, pod templates, the workloads
 * that live outside the chart, and the effective values of a render.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { IPodTemplateSpec } from 'kubernetes-models/v1/PodTemplateSpec';
import { parse, parseAllDocuments } from 'yaml';
import { requireTool } from '../../scripts/tools.ts';

/**
 * The chart under test. SECRETID_CHART_DIR points the suites at a modified copy, which is how
 * a check is shown to fire: copy chart/, break a template, run the suite against the copy.
 */
export const chartDirectory = resolve(process.env.SECRETID_CHART_DIR ?? 'chart');

/** Every scenario in chart/ci, as paths; helm lint and the renders go through all of them. */
export const scenarioFiles = readdirSync(join(chartDirectory, 'ci'))
  .filter((file) => file.endsWith('-values.yaml'))
  .sort()
  .map((file) => join(chartDirectory, 'ci', file));

/** A scenario's short name: chart/ci/nfs-values.yaml is "nfs". */
export const scenarioName = (file: string) =>
  (file.split('/').at(-1) ?? file).replace(/-values\.yaml$/, '');

/** The two installations every scenario is rendered as: the default and a renamed one. */
export const installations = [
  { release: 'secretid', namespace: 'default' },
  { release: 'agency-7', namespace: 'field-ops' },
] as const;

/** The chart's name, which may appear in object names and labels whatever the release. */
export const chartName = 'secretid';

export type Labels = Record<string, string>;

/** One object of helm's output, as parsed YAML. */
export interface RenderedObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Labels;
    annotations?: Record<string, string>;
  };
  [field: string]: unknown;
}

export interface RenderOptions {
  release?: string;
  namespace?: string;
  /** Values files, as paths (helm's -f), applied in order. */
  valuesFiles?: string[];
  /** helm's --set, one entry per key; `null` removes a default. */
  set?: Record<string, string | number | boolean | null>;
}

const helmArguments = (options: RenderOptions) => [
  'template',
  options.release ?? 'secretid',
  chartDirectory,
  '--namespace',
  options.namespace ?? 'default',
  ...(options.valuesFiles ?? []).flatMap((file) => ['-f', file]),
  ...Object.entries(options.set ?? {}).flatMap(([key, value]) => ['--set', `${key}=${value}`]),
];

/** Runs helm; never throws for a non-zero exit. */
export const runHelm = (args: string[]) => {
  const result = spawnSync(requireTool('helm'), args, {
    encoding: 'utf8',
    // No cluster is reachable here; an empty KUBECONFIG keeps helm from looking for one.
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', KUBECONFIG: '' },
    timeout: 60_000,
  });
  if (result.error) throw result.error;
  return { status: result.status ?? -1, stdout: result.stdout, stderr: result.stderr };
};

/** Parses a multi-document YAML stream, dropping empty documents; throws on a YAML error. */
export const parseManifests = (text: string): RenderedObject[] =>
  parseAllDocuments(text).flatMap((document) => {
    if (document.errors.length > 0) {
      throw new Error(`helm produced invalid YAML: ${document.errors[0]?.message}`);
    }
    const value: unknown = document.toJS();
    return value === null || value === undefined ? [] : [value as RenderedObject];
  });

/**
 * `helm template` the chart and return the parsed objects; throws with helm's stderr when
 * the render fails.
 * @example renderChart({ release: 'agency-7', namespace: 'field-ops', valuesFiles: [nfs] })
 */
export const renderChart = (options: RenderOptions = {}): RenderedObject[] => {
  const result = runHelm(helmArguments(options));
  if (result.status !== 0) {
    throw new Error(`helm template failed (${result.status}): ${result.stderr}`);
  }
  return parseManifests(result.stdout);
};

/** Runs a render that is expected to fail: helm's exit code and stderr. */
export const renderFailure = (options: RenderOptions = {}) => {
  const { status, stderr } = runHelm(helmArguments(options));
  return { status, stderr };
};

/** `helm lint --strict` the chart with one values file: exit code and all output. */
export const helmLint = (valuesFile: string) => {
  const { status, stdout, stderr } = runHelm([
    'lint',
    '--strict',
    chartDirectory,
    '-f',
    valuesFile,
  ]);
  return { status, output: `${stdout}${stderr}` };
};

type Tree = Record<string, unknown>;

const isTree = (value: unknown): value is Tree =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

const merge = (base: Tree, override: Tree): Tree => {
  const result: Tree = { ...base };
  for (const [key, value] of Object.entries(override)) {
    const current = result[key];
    result[key] = isTree(current) && isTree(value) ? merge(current, value) : value;
  }
  return result;
};

const setPath = (tree: Tree, path: string, value: string | number | boolean | null) => {
  const keys = path.split('.');
  const last = keys.pop() as string;
  let node = tree;
  for (const key of keys) {
    const next = node[key];
    if (!isTree(next)) node[key] = {};
    node = node[key] as Tree;
  }
  if (value === null || value === 'null') delete node[last];
  else node[last] = value;
};

/**
 * The values a render sees: chart/values.yaml, then each values file, then --set (plain dotted
 * keys only, as the suites use them). Lets a check compare output with what was asked for.
 */
export const effectiveValues = (options: RenderOptions = {}): Tree => {
  let values = parse(readFileSync(join(chartDirectory, 'values.yaml'), 'utf8')) as Tree;
  for (const file of options.valuesFiles ?? []) {
    values = merge(values, (parse(readFileSync(file, 'utf8')) as Tree | null) ?? {});
  }
  for (const [key, value] of Object.entries(options.set ?? {})) {
    setPath(values, key, value);
  }
  return values;
};

/** Reads a dotted path of a values tree. */
export const valueAt = (values: unknown, path: string): unknown =>
  path.split('.').reduce<unknown>((node, key) => (isTree(node) ? node[key] : undefined), values);

/** Reads a dotted path that must hold a string. */
export const stringValue = (values: unknown, path: string): string => {
  const value = valueAt(values, path);
  if (typeof value !== 'string') throw new Error(`values: ${path} is not a string`);
  return value;
};

export interface LabelSelector {
  matchLabels?: Labels;
  matchExpressions?: { key: string; operator: string; values?: string[] }[];
}

/** Kubernetes label-selector semantics; an empty selector selects everything. */
export const selects = (selector: LabelSelector | undefined, labels: Labels = {}) => {
  if (!selector) return false;
  const byLabel = Object.entries(selector.matchLabels ?? {}).every(
    ([key, value]) => labels[key] === value,
  );
  const byExpression = (selector.matchExpressions ?? []).every(({ key, operator, values }) => {
    const value = labels[key];
    switch (operator) {
      case 'In':
        return value !== undefined && (values ?? []).includes(value);
      case 'NotIn':
        return value === undefined || !(values ?? []).includes(value);
      case 'Exists':
        return value !== undefined;
      case 'DoesNotExist':
        return value === undefined;
      default:
        throw new Error(`unknown selector operator ${operator}`);
    }
  });
  return byLabel && byExpression;
};

/** A pod template in the output, with the object that owns it. */
export interface PodTemplate {
  owner: RenderedObject;
  template: IPodTemplateSpec;
}

const templateOf = (object: RenderedObject): IPodTemplateSpec | undefined => {
  const spec = object.spec as Record<string, unknown> | undefined;
  switch (object.kind) {
    case 'Pod':
      return { metadata: object.metadata, spec: spec as IPodTemplateSpec['spec'] };
    case 'Deployment':
    case 'StatefulSet':
    case 'DaemonSet':
    case 'ReplicaSet':
    case 'Job':
      return spec?.template as IPodTemplateSpec | undefined;
    case 'CronJob':
      return (valueAt(spec, 'jobTemplate.spec.template') as IPodTemplateSpec | undefined) ?? {};
    default:
      return undefined;
  }
};

/** Kinds that run pods; an object of one of these kinds always yields a template. */
export const workloadKinds = [
  'Pod',
  'Deployment',
  'StatefulSet',
  'DaemonSet',
  'ReplicaSet',
  'Job',
  'CronJob',
];

/** Every pod template in the output (StatefulSets, Jobs, CronJobs, Deployments...). */
export const podTemplates = (objects: RenderedObject[]): PodTemplate[] =>
  objects.flatMap((owner) => {
    const template = templateOf(owner);
    return template ? [{ owner, template }] : [];
  });

/** The container ports of a Knative Service's pods in knative/services/<name>.yaml. */
const knativeContainerPorts = (component: string): number[] => {
  const service = parse(readFileSync(join('knative', 'services', `${component}.yaml`), 'utf8')) as {
    spec: { template: { spec: { containers: { ports?: { containerPort: number }[] }[] } } };
  };
  return service.spec.template.spec.containers.flatMap((container) =>
    (container.ports ?? []).map((port) => port.containerPort),
  );
};

/**
 * Ports of Knative's queue-proxy, the sidecar Knative adds to every function pod (reserved by
 * Knative, see knative.dev/serving's queue constants): only the one the chart opens is listed.
 */
export const queueProxyPorts = [{ port: 9091, name: 'http-usermetric', use: 'request metrics' }];

/**
 * Workloads the chart's NetworkPolicies govern that other parts of the project deploy: the
 * Knative functions (knative/) and the backup jobs a later chart issue adds. Their pods carry
 * the chart's selector labels with these components, and listen on these ports: the
 * functions on their container port (from knative/services/*.yaml) and on the queue-proxy's
 * ports that Knative adds to their pods. One list, so a policy that selects anything else, or
 * opens a port none of its pods has, fails the suite. (The PostgreSQL exporter is no longer
 * here: it is a sidecar of the chart's PostgreSQL pod.)
 */
export const externalWorkloads = [
  {
    component: 'api',
    deployedBy: 'the Knative Service for the API (knative/services/api.yaml)',
    ports: [...knativeContainerPorts('api'), ...queueProxyPorts.map(({ port }) => port)],
  },
  {
    component: 'web',
    deployedBy: 'the Knative Service for the page (knative/services/web.yaml)',
    ports: [...knativeContainerPorts('web'), ...queueProxyPorts.map(({ port }) => port)],
  },
  { component: 'backup', deployedBy: 'the backup CronJobs (a later chart issue)', ports: [] },
] as const;

/** The pod labels of the external workloads for a release. */
export const externalPodLabels = (release: string, name = chartName): Labels[] =>
  externalWorkloads.map(({ component }) => ({
    'app.kubernetes.io/name': name,
    'app.kubernetes.io/instance': release,
    'app.kubernetes.io/component': component,
  }));

/** Kinds without a namespace: their names must carry the release's namespace. */
export const clusterScopedKinds = ['PersistentVolume', 'ClusterRole', 'ClusterRoleBinding'];

/** An RBAC rule as rendered. */
export interface RbacRule {
  apiGroups?: string[];
  resources?: string[];
  resourceNames?: string[];
  nonResourceURLs?: string[];
  verbs: string[];
}

/** Verbs that only read. */
export const readOnlyVerbs = new Set(['get', 'list', 'watch']);

/**
 * The Roles and ClusterRoles of the output that a ServiceAccount of the release's namespace is
 * bound to, through the output's RoleBindings and ClusterRoleBindings; a binding whose role is
 * not rendered yields a placeholder without rules, so it cannot pass for read-only.
 */
export const rolesBoundTo = (
  objects: RenderedObject[],
  namespace: string,
  serviceAccount: string,
): RenderedObject[] =>
  objects
    .filter((object) => object.kind === 'RoleBinding' || object.kind === 'ClusterRoleBinding')
    .filter((binding) =>
      ((binding.subjects ?? []) as { kind: string; name: string; namespace?: string }[]).some(
        (subject) =>
          subject.kind === 'ServiceAccount' &&
          subject.name === serviceAccount &&
          (subject.namespace ?? binding.metadata.namespace ?? namespace) === namespace,
      ),
    )
    .map((binding) => {
      const { kind, name } = binding.roleRef as { kind: string; name: string };
      return (
        objects.find((object) => object.kind === kind && object.metadata.name === name) ?? {
          apiVersion: 'rbac.authorization.k8s.io/v1',
          kind,
          metadata: { name: `${name} (not rendered)` },
        }
      );
    });

/** Whether a role's rules only read (verbs within get, list and watch). */
export const onlyReads = (role: RenderedObject) =>
  ((role.rules as RbacRule[] | undefined) ?? [undefined]).every(
    (rule) =>
      rule !== undefined &&
      rule.verbs.length > 0 &&
      rule.verbs.every((verb) => readOnlyVerbs.has(verb)),
  );

/** "Kind/name", for messages. */
export const describe = (object: RenderedObject) => `${object.kind}/${object.metadata.name}`;

/** The objects of one kind. */
export const ofKind = (objects: RenderedObject[], kind: string) =>
  objects.filter((object) => object.kind === kind);

/** The one object of a kind whose name ends with a suffix; throws when there is not exactly one. */
export const theObject = (objects: RenderedObject[], kind: string, nameSuffix = '') => {
  const found = ofKind(objects, kind).filter((object) => object.metadata.name.endsWith(nameSuffix));
  if (found.length !== 1) {
    throw new Error(`expected one ${kind} named *${nameSuffix}, found ${found.length}`);
  }
  return found[0] as RenderedObject;
};

/** Decodes a Secret's data entry (base64) to text. */
export const secretText = (secret: RenderedObject, key: string) => {
  const data = (secret.data ?? {}) as Record<string, string>;
  const value = data[key];
  if (value === undefined) throw new Error(`${describe(secret)} has no key ${key}`);
  return Buffer.from(value, 'base64').toString('utf8');
};
