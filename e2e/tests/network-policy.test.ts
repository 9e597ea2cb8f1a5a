/**
 * The chart's NetworkPolicies, enforced by kube-router on the test cluster: only pods with the
 * labels of the api, the seeder or the backups reach PostgreSQL; a pod without them in the
 * release's namespace, or any pod of another namespace, does not. Prometheus is reachable only
 * from Traefik's namespace (and through the edge with its password: edge.test.ts).
 */
import test from 'ava';
import { imageReferences, postgresImage, toolboxImage } from '../actions/images.ts';
import {
  ensureRelease,
  kubectl,
  kubectlResult,
  namespace,
  release,
  runPod,
} from './helpers/cluster.ts';

/** A namespace of its own per run (a deleted one may still be terminating). */
const outsider = `e2e-outsider-${Date.now().toString(36)}`;
const postgres = () => imageReferences(postgresImage)[0] as string;
const toolbox = () => imageReferences(toolboxImage)[0] as string;
const clusterIp = (service: string) =>
  kubectl(['-n', namespace, 'get', 'service', service, '-o', 'jsonpath={.spec.clusterIP}']);
/**
 * A probe tried once a second: exit 0 at the first success, 2 when none of `attempts`
 * succeeded. kube-router admits a new pod a second or two after it starts (its sync runs on
 * the pod's event), and until then the pod is refused: so a probe that must succeed gets 15
 * tries, and one that must fail is tried for 6, twice as long as admission has ever taken here.
 */
const mustSucceed = 15;
const mustFail = 6;
const repeatedly = (probe: string, attempts: number) => [
  'sh',
  '-c',
  `for i in $(seq ${attempts}); do if ${probe}; then echo "succeeded at attempt $i"; exit 0; fi; sleep 1; done; exit 2`,
];
const pgIsReady = (host: string, attempts: number) =>
  repeatedly(`pg_isready -h ${host} -p 5432 -t 2`, attempts);
const curlOnce = (url: string, attempts: number) =>
  repeatedly(`curl -sS --max-time 2 -o /dev/null -w '%{http_code}\\n' ${url}`, attempts);

test.before(() => {
  ensureRelease(release, namespace);
  if (kubectlResult(['get', 'namespace', outsider]).status !== 0)
    kubectl(['create', 'namespace', outsider]);
});
test.after.always(() => {
  kubectlResult(['delete', 'namespace', outsider, '--wait=false']);
});

const apiLabels = {
  'app.kubernetes.io/name': 'secretid',
  'app.kubernetes.io/instance': release,
  'app.kubernetes.io/component': 'api',
};

test("a pod with the api's labels reaches PostgreSQL (cluster)", async (t) => {
  const result = await runPod({
    namespace,
    name: 'e2e-as-api',
    image: postgres(),
    command: pgIsReady(clusterIp(`${release}-postgres`), mustSucceed),
    labels: apiLabels,
  });
  t.is(result.exitCode, 0, result.log);
});

test('a pod without those labels, in the same namespace, does not reach PostgreSQL (cluster)', async (t) => {
  const result = await runPod({
    namespace,
    name: 'e2e-unlabelled',
    image: postgres(),
    command: pgIsReady(clusterIp(`${release}-postgres`), mustFail),
    labels: { ...apiLabels, 'app.kubernetes.io/component': 'web' },
  });
  t.is(result.exitCode, 2, `pg_isready: ${result.log}`);
});

test('a pod of another namespace, even with the api labels, reaches neither PostgreSQL nor Prometheus (cluster)', async (t) => {
  const traefik = kubectl([
    '-n',
    'kube-system',
    'get',
    'service',
    'traefik',
    '-o',
    'jsonpath={.spec.clusterIP}',
  ]);
  const [toPostgres, toPrometheus, control] = await Promise.all([
    runPod({
      namespace: outsider,
      name: 'e2e-outsider-postgres',
      image: postgres(),
      command: pgIsReady(clusterIp(`${release}-postgres`), mustFail),
      labels: apiLabels,
    }),
    runPod({
      namespace: outsider,
      name: 'e2e-outsider-prometheus',
      image: toolbox(),
      command: curlOnce(`http://${clusterIp(`${release}-prometheus`)}:9090/-/ready`, mustFail),
    }),
    // The control: the same kind of pod reaches a Service no policy covers (Traefik's), so
    // what stopped the others was the policies, not the network.
    runPod({
      namespace: outsider,
      name: 'e2e-outsider-control',
      image: toolbox(),
      command: curlOnce(`http://${traefik}/`, mustSucceed),
    }),
  ]);
  t.is(toPostgres.exitCode, 2, `pg_isready: ${toPostgres.log}`);
  // Refused on every attempt: kube-router rejects what no policy admits.
  t.is(toPrometheus.exitCode, 2, `curl: ${toPrometheus.log}`);
  t.is(control.exitCode, 0, `curl: ${control.log}`);
  t.regex(control.log, /^404$/m);
});
