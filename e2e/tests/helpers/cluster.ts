/**
 * What the e2e tests use to drive the test cluster from outside, as a person would: kubectl
 * and helm with the harness's kubeconfig, psql inside the PostgreSQL pod, and polling.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { requireTool } from '../../../scripts/tools.ts';
import { chartImage, chartValues } from '../../lib/chart.ts';
import { nodes, paths, repositoryRoot, roleDefault } from '../../lib/settings.ts';

export const chartDirectory = join(repositoryRoot, 'chart');
export const clusterEnvironment = () => ({ ...process.env, KUBECONFIG: paths.kubeconfig });

export interface CommandResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

const run = (tool: 'kubectl' | 'helm', args: string[], input?: string): CommandResult => {
  const result = spawnSync(requireTool(tool), args, {
    encoding: 'utf8',
    env: clusterEnvironment(),
    input,
    timeout: 15 * 60_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  if (result.error) throw result.error;
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
};

/** Runs kubectl; throws with its output unless it succeeded. */
export const kubectl = (args: string[], input?: string) => {
  const result = run('kubectl', args, input);
  if (result.status !== 0)
    throw new Error(`kubectl ${args.join(' ')} exited ${result.status}: ${result.stderr}`);
  return result.stdout;
};
/** Runs kubectl and returns the whole result, whatever the exit status. */
export const kubectlResult = (args: string[], input?: string) => run('kubectl', args, input);
export const kubectlJson = <T = unknown>(args: string[]) =>
  JSON.parse(kubectl([...args, '-o', 'json'])) as T;

/** Runs helm; throws with its output unless it succeeded. */
export const helm = (args: string[]) => {
  const result = run('helm', args);
  if (result.status !== 0)
    throw new Error(
      `helm ${args.join(' ')} exited ${result.status}:\n${result.stdout}\n${result.stderr}`,
    );
  return result.stdout;
};

/** A Secret's values, decoded. */
export const secretData = (namespace: string, name: string): Record<string, string> => {
  const secret = kubectlJson<{ data?: Record<string, string> }>([
    '-n',
    namespace,
    'get',
    'secret',
    name,
  ]);
  return Object.fromEntries(
    Object.entries(secret.data ?? {}).map(([key, value]) => [
      key,
      Buffer.from(value, 'base64').toString('utf8'),
    ]),
  );
};

/**
 * Runs SQL with psql inside the PostgreSQL pod: as the superuser over the local socket, or as
 * another role over TCP with its password (as the api connects).
 */
export const psql = (
  namespace: string,
  pod: string,
  sqlText: string,
  as: { user: string; password?: string; database?: string } = { user: 'postgres' },
) =>
  kubectlResult([
    '-n',
    namespace,
    'exec',
    pod,
    '-c',
    'postgres',
    '--',
    'env',
    ...(as.password ? [`PGPASSWORD=${as.password}`] : []),
    'psql',
    '-X',
    '-q',
    '-At',
    '-v',
    'ON_ERROR_STOP=1',
    ...(as.password ? ['-h', '127.0.0.1'] : []),
    '-U',
    as.user,
    '-d',
    as.database ?? 'secretid',
    '-c',
    sqlText,
  ]);

/** Polls until `check` returns something other than undefined or false, or throws. */
export const eventually = async <T>(
  what: string,
  check: () => T | undefined | false,
  timeoutMs = 120_000,
): Promise<T> => {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    try {
      const value = check();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      last = error instanceof Error ? error.message : String(error);
    }
    if (Date.now() > deadline)
      throw new Error(
        `timed out after ${timeoutMs / 1000} s waiting for ${what}${last ? `: ${last}` : ''}`,
      );
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
};

/** The chart's roles and keys, from its values (what a person would read in values.yaml). */
export { chartImage };

/** Installs the chart as `release` unless it is deployed (tests of other files may run first). */
export const ensureRelease = (release: string, namespace: string, extraArgs: string[] = []) => {
  const status = run('helm', ['status', release, '-n', namespace, '-o', 'json']);
  if (
    status.status === 0 &&
    (JSON.parse(status.stdout) as { info: { status: string } }).info.status === 'deployed'
  )
    return;
  helm([
    'upgrade',
    '--install',
    release,
    chartDirectory,
    '-n',
    namespace,
    '--create-namespace',
    '--wait',
    '--timeout',
    '5m',
    ...extraArgs,
  ]);
};

/** The edge as a person reaches it from the host: the first node's address, ports 80 and 443. */
export const edgeAddress = () => nodes[0]?.address as string;

export interface CurlResult {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * curl through the edge, by host name: `--resolve host:port:<edge>` so TLS sees the name (SNI)
 * as a real client would, with the CA from `caFile`; returns the status line's code, the
 * response headers (lower-case names) and the body.
 */
export const curlEdge = (
  url: string,
  options: { caFile?: string; user?: string; extra?: string[] } = {},
): CurlResult => {
  const { hostname, port, protocol } = new URL(url);
  const effectivePort = port || (protocol === 'https:' ? '443' : '80');
  const args = [
    '-sS',
    '--max-time',
    '10',
    '--resolve',
    `${hostname}:${effectivePort}:${edgeAddress()}`,
    '-D',
    '-',
    ...(options.caFile ? ['--cacert', options.caFile] : []),
    ...(options.user ? ['-u', options.user] : []),
    ...(options.extra ?? []),
    url,
  ];
  const result = spawnSync('curl', args, { encoding: 'utf8', timeout: 20_000 });
  if (result.status !== 0)
    throw new Error(`curl ${args.join(' ')} exited ${result.status}: ${result.stderr}`);
  const [head = '', ...rest] = result.stdout.split('\r\n\r\n');
  const [statusLine = '', ...headerLines] = head.split('\r\n');
  return {
    status: Number(statusLine.split(' ')[1]),
    headers: Object.fromEntries(
      headerLines.map((line) => {
        const colon = line.indexOf(':');
        return [line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim()];
      }),
    ),
    body: rest.join('\r\n\r\n'),
  };
};

export interface OneShotPod {
  namespace: string;
  name: string;
  image: string;
  command: string[];
  labels?: Record<string, string>;
  /** Schedule it on this node. */
  node?: string;
}

/**
 * Runs a command in a pod of its own until it ends (hardened like the chart's pods: non-root,
 * no privilege escalation, read-only root), returns its exit code and log, and deletes it.
 */
export const runPod = async (pod: OneShotPod, timeoutMs = 90_000) => {
  kubectl(['-n', pod.namespace, 'delete', 'pod', pod.name, '--ignore-not-found', '--wait']);
  kubectl(
    ['apply', '-f', '-'],
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: pod.name, namespace: pod.namespace, labels: pod.labels ?? {} },
      spec: {
        restartPolicy: 'Never',
        automountServiceAccountToken: false,
        enableServiceLinks: false,
        ...(pod.node ? { nodeName: pod.node } : {}),
        securityContext: {
          runAsNonRoot: true,
          runAsUser: 65534,
          runAsGroup: 65534,
          seccompProfile: { type: 'RuntimeDefault' },
        },
        containers: [
          {
            name: 'main',
            image: pod.image,
            imagePullPolicy: 'IfNotPresent',
            command: pod.command,
            securityContext: {
              allowPrivilegeEscalation: false,
              readOnlyRootFilesystem: true,
              capabilities: { drop: ['ALL'] },
            },
          },
        ],
      },
    }),
  );
  const exitCode = await eventually(
    `pod ${pod.namespace}/${pod.name} to finish`,
    () => {
      const code = kubectl([
        '-n',
        pod.namespace,
        'get',
        'pod',
        pod.name,
        '-o',
        'jsonpath={.status.containerStatuses[0].state.terminated.exitCode}',
      ]);
      return code === '' ? undefined : Number(code);
    },
    timeoutMs,
  );
  const log = kubectlResult(['-n', pod.namespace, 'logs', pod.name]).stdout;
  kubectl(['-n', pod.namespace, 'delete', 'pod', pod.name, '--wait=false']);
  return { exitCode, log };
};

/**
 * The environment for commands run as a person types them (docs, NOTES.txt): the cluster's
 * kubeconfig, and kubectl and helm on PATH.
 */
export const shellEnvironment = () => ({
  ...clusterEnvironment(),
  PATH: [dirname(requireTool('kubectl')), dirname(requireTool('helm')), process.env.PATH].join(':'),
});

/** The release the tests install, and its namespace (as chart/README.md and NOTES.txt name them). */
export const release = 'secretid';
export const namespace = 'secretid';

/** helm upgrade of the release with the values it has and `values` set on top, waited for. */
export const upgradeRelease = (values: Record<string, string | boolean>) =>
  helm([
    'upgrade',
    release,
    chartDirectory,
    '-n',
    namespace,
    '--reuse-values',
    ...Object.entries(values).flatMap(([key, value]) => ['--set', `${key}=${value}`]),
    '--wait',
    '--timeout',
    '5m',
  ]);

/** A role of the chart's values (credentials.roles) and its password from the credentials Secret. */
export const chartRole = (role: 'owner' | 'reader' | 'monitor') => {
  const credentials = chartValues().credentials as {
    roles: Record<string, string>;
    keys: Record<string, string>;
  };
  const key = credentials.keys[`${role}Password`] as string;
  return {
    user: credentials.roles[role] as string,
    password: secretData(namespace, `${release}-credentials`)[key] as string,
  };
};

/**
 * The CA a client trusts, as NOTES.txt says to get it (from the chart's TLS Secret), written to
 * a file of its own; removed when the test process exits.
 */
export const edgeCaFile = () => {
  const folder = mkdtempSync(join(tmpdir(), 'secretid-e2e-ca-'));
  process.once('exit', () => rmSync(folder, { recursive: true, force: true }));
  const file = join(folder, 'secretid-ca.crt');
  writeFileSync(file, secretData(namespace, `${release}-tls`)['ca.crt'] as string);
  return file;
};

/** knative/ of the repository: the functions as Knative Services (knative/README.md). */
export const knativeDirectory = join(repositoryRoot, 'knative');

/** The field manager knative/ is applied with (ansible's deploy role names it, once). */
export const knativeFieldManager = () =>
  roleDefault('secretid_deploy', 'secretid_deploy_knative_field_manager');

/** knative/ (or an overlay over it) applied as knative/README.md says: server-side, forcing. */
export const applyKnative = (directory = knativeDirectory) =>
  kubectl([
    'apply',
    '--server-side',
    '--force-conflicts',
    `--field-manager=${knativeFieldManager()}`,
    '-k',
    directory,
    '-n',
    namespace,
  ]);

/** A JSON-patch operation that sets an annotation under `path` (the key escaped for the pointer). */
export const setAnnotation = (path: string, key: string, value: string) => ({
  op: 'add',
  path: `${path}/${key.replaceAll('~', '~0').replaceAll('/', '~1')}`,
  value,
});

/** JSON-patch operations for knative/'s Services (all of them, or the one named). */
export interface KnativePatch {
  service?: string;
  operations: object[];
}

/** No gradual rollout: a new revision takes all the traffic once Ready (knative/ spreads it over 120 s). */
export const immediateRollout = (service?: string): KnativePatch => ({
  service,
  operations: [
    setAnnotation('/metadata/annotations', 'serving.knative.dev/rollout-duration', '0s'),
  ],
});

/**
 * Writes a kustomize overlay over knative/ with these patches into `directory` (a folder a
 * person could apply as knative/README.md says).
 */
export const writeKnativeOverlay = (directory: string, patches: KnativePatch[]) =>
  writeFileSync(
    join(directory, 'kustomization.yaml'),
    JSON.stringify({
      apiVersion: 'kustomize.config.k8s.io/v1beta1',
      kind: 'Kustomization',
      resources: [relative(directory, knativeDirectory)],
      patches: patches.map(({ service, operations }) => ({
        target: {
          group: 'serving.knative.dev',
          kind: 'Service',
          ...(service ? { name: service } : {}),
        },
        patch: JSON.stringify(operations),
      })),
    }),
  );

/** knative/ with these patches applied as applyKnative does, through a throwaway overlay. */
export const applyKnativeWith = (patches: KnativePatch[]) => {
  const overlay = mkdtempSync(join(tmpdir(), 'secretid-e2e-overlay-'));
  try {
    writeKnativeOverlay(overlay, patches);
    return applyKnative(overlay);
  } finally {
    rmSync(overlay, { recursive: true, force: true });
  }
};

/**
 * Applies knative/ into the chart's namespace as knative/README.md says and waits until both
 * Knative Services are Ready; returns the seconds that took.
 */
export const ensureKnativeServices = () => {
  const started = Date.now();
  applyKnative();
  waitForKnativeServices();
  return (Date.now() - started) / 1000;
};

/** One field of a Knative Service, by JSONPath (e.g. "{.status.latestReadyRevisionName}"). */
export const ksvcField = (service: string, jsonPath: string) =>
  kubectl(['-n', namespace, 'get', 'ksvc', service, '-o', `jsonpath=${jsonPath}`]);

/** The revision a Service routes its traffic to (the latest ready one: knative/ follows it). */
export const servingRevision = (service: string) =>
  ksvcField(service, '{.status.latestReadyRevisionName}');

/**
 * Waits until both Knative Services are Ready for their current spec (at most 5 minutes each):
 * first until Knative has seen the last change (observedGeneration), so that a Ready of the
 * spec before an apply does not count, then for Ready, which a gradual rollout holds back.
 */
export const waitForKnativeServices = () => {
  for (const service of ['api', 'web']) {
    const generation = ksvcField(service, '{.metadata.generation}');
    kubectl([
      'wait',
      '-n',
      namespace,
      `--for=jsonpath={.status.observedGeneration}=${generation}`,
      `ksvc/${service}`,
      '--timeout=300s',
    ]);
  }
  kubectl([
    'wait',
    '-n',
    namespace,
    '--for=condition=Ready',
    'ksvc/api',
    'ksvc/web',
    '--timeout=300s',
  ]);
};

export interface ServicePod {
  name: string;
  revision: string;
  ready: boolean;
  graceSeconds: number;
  /** The pod's address ('' before it has one) and its node. */
  address: string;
  node: string;
}

/**
 * The pods of a Knative Service that are not terminating (a terminating pod is out of its
 * Service's endpoints and takes nothing new), with their revision and readiness.
 */
export const servicePods = (service: string): ServicePod[] =>
  kubectlJson<{
    items: Array<{
      metadata: { name: string; labels: Record<string, string>; deletionTimestamp?: string };
      spec: { terminationGracePeriodSeconds: number; nodeName?: string };
      status: { podIP?: string; conditions?: Array<{ type: string; status: string }> };
    }>;
  }>(['-n', namespace, 'get', 'pods', '-l', `serving.knative.dev/service=${service}`])
    .items.filter((pod) => !pod.metadata.deletionTimestamp)
    .map((pod) => ({
      name: pod.metadata.name,
      revision: pod.metadata.labels['serving.knative.dev/revision'] as string,
      ready: pod.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false,
      graceSeconds: pod.spec.terminationGracePeriodSeconds,
      address: pod.status.podIP ?? '',
      node: pod.spec.nodeName ?? '',
    }));

/**
 * Replaces a Knative Service's pods (they read their ConfigMaps when they start) and waits
 * for a Ready replacement, not for the old ones' drains (30 s and more) to end. A request
 * through the edge wakes the Service: without traffic the autoscaler may take it to zero
 * instead of replacing the deleted pod (seen on the test cluster).
 */
export const replaceServicePods = async (service: string, caFile = edgeCaFile()) => {
  const old = servicePods(service).map((pod) => pod.name);
  if (old.length > 0) kubectl(['-n', namespace, 'delete', 'pod', '--wait=false', ...old]);
  await eventually(
    `a new ${service} pod to be Ready`,
    () => {
      if (servicePods(service).some((pod) => pod.ready && !old.includes(pod.name))) return true;
      // Held by the activator until a pod answers, at most 30 s.
      curlEdge(`https://${edgeHost(service as 'api' | 'web')}/healthz`, {
        caFile,
        extra: ['--max-time', '30'],
      });
      return undefined;
    },
    180_000,
  );
};

/** The Prometheus HTTP API through the edge with TLS and the chart's basic-auth password. */
export const prometheusApi = <T = unknown>(caFile: string, path: string): T => {
  const auth = secretData(namespace, `${release}-prometheus-basic-auth`);
  const answer = curlEdge(`https://${edgeHost('prometheus')}${path}`, {
    caFile,
    user: `${auth.username}:${auth.password}`,
  });
  if (answer.status !== 200)
    throw new Error(`Prometheus ${path} answered ${answer.status}: ${answer.body.slice(0, 500)}`);
  const parsed = JSON.parse(answer.body) as { status: string; data: T; error?: string };
  if (parsed.status !== 'success') throw new Error(`Prometheus ${path}: ${parsed.error}`);
  return parsed.data;
};

/** Alerts Alertmanager holds (API v2) matching a filter, through the edge as an operator. */
export const alertmanagerAlerts = (caFile: string, filter: string) => {
  const auth = secretData(namespace, `${release}-prometheus-basic-auth`);
  const path = `/api/v2/alerts?filter=${encodeURIComponent(filter)}`;
  const answer = curlEdge(`https://${edgeHost('alertmanager')}${path}`, {
    caFile,
    user: `${auth.username}:${auth.password}`,
  });
  if (answer.status !== 200)
    throw new Error(`Alertmanager ${path} answered ${answer.status}: ${answer.body.slice(0, 500)}`);
  return JSON.parse(answer.body) as Array<{
    labels: Record<string, string>;
    status: { state: string };
    receivers: Array<{ name: string }>;
    startsAt: string;
  }>;
};

/** An instant query's result: each series' labels and value. */
export const promQuery = (caFile: string, expr: string) =>
  prometheusApi<{ result: Array<{ metric: Record<string, string>; value: [number, string] }> }>(
    caFile,
    `/api/v1/query?query=${encodeURIComponent(expr)}`,
  ).result;

/** A public host name of the chart's values: hosts.<name> under domain (api.secretid, ...). */
export const edgeHost = (name: 'api' | 'web' | 'prometheus' | 'alertmanager') => {
  const values = chartValues() as { domain: string; hosts: Record<string, string> };
  return `${values.hosts[name]}.${values.domain}`;
};
