/**
 * Faults on the test cluster, as an operator causes them: the PostgreSQL pod deleted under a
 * bounded load through the edge (the api answers 503 problem documents while its copy of the
 * names is too old, never hangs, and serves again within seconds of PostgreSQL being Ready),
 * and a drain of PostgreSQL's node with the data on storage every node sees (the NFS stand-in):
 * PostgreSQL moves to the other node with its data, and at no moment do two servers run on
 * its data directory (checked on the host, by the directory's inode, not only through the API).
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { requireTool } from '../../scripts/tools.ts';
import {
  chartDirectory,
  clusterEnvironment,
  edgeCaFile,
  edgeHost,
  ensureKnativeServices,
  ensureRelease,
  eventually,
  helm,
  kubectl,
  kubectlResult,
  namespace,
  psql,
  release,
} from './helpers/cluster.ts';
import { byStatus, edgeLoad } from './helpers/load.ts';

const postgresPod = `${release}-postgres-0`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const podReady = (ns: string, pod: string) =>
  kubectlResult([
    '-n',
    ns,
    'get',
    'pod',
    pod,
    '-o',
    'jsonpath={.metadata.deletionTimestamp}|{.status.conditions[?(@.type=="Ready")].status}',
  ]).stdout.trim() === '|True';

/** The api's names are reloaded every second and never served older than 3 s during the test. */
const shortStaleness = [
  '--set',
  'api.namesRefreshSeconds=1',
  '--set',
  'api.namesMaxStalenessSeconds=3',
];
/** The api's pods read their ConfigMap when they start: replace them. */
const restartApi = () => {
  kubectl(['-n', namespace, 'delete', 'pod', '-l', 'serving.knative.dev/service=api', '--wait']);
};

test.before(() => {
  ensureRelease(release, namespace);
  ensureKnativeServices();
});

test.after.always(() => {
  // Back to the chart's defaults for the files after this one.
  helm(['upgrade', release, chartDirectory, '-n', namespace, '--wait', '--timeout', '5m']);
  restartApi();
});

test.serial(
  'PostgreSQL pod deleted under bounded load: 503 problem documents while the names are too old, never a hang, 200 again within seconds of Ready (cluster)',
  async (t) => {
    helm(['upgrade', release, chartDirectory, '-n', namespace, '--wait', ...shortStaleness]);
    restartApi();
    const caFile = edgeCaFile();
    // 120 requests at 4 per second (30 s), each with a 5 s deadline; PostgreSQL goes at 3 s.
    const load = edgeLoad({
      url: `https://${edgeHost('api')}/randomName`,
      caFile,
      count: 120,
      perSecond: 4,
      maxSeconds: 5,
    });
    const started = Date.now();
    const since = () => (Date.now() - started) / 1000;
    await sleep(3000);
    const deletedAt = since();
    kubectl(['-n', namespace, 'delete', 'pod', postgresPod, '--wait=false']);
    await eventually('the old PostgreSQL pod to be gone', () => !podReady(namespace, postgresPod));
    const goneAt = since();
    await eventually(
      'PostgreSQL to be Ready again',
      () => podReady(namespace, postgresPod),
      120_000,
    );
    const readyAt = since();
    const answers = await load.done;
    const counts = byStatus(answers);
    const unavailable = answers.filter((answer) => answer.status === 503);
    const slowest = Math.max(...answers.map((answer) => answer.seconds));
    t.log(
      `deleted at ${deletedAt.toFixed(1)} s, not Ready from ${goneAt.toFixed(1)} s, Ready again at ${readyAt.toFixed(1)} s`,
    );
    t.log(
      `answers: ${JSON.stringify(counts)}; 503 from ${unavailable[0]?.at.toFixed(1)} s to ${unavailable.at(-1)?.at.toFixed(1)} s; slowest ${slowest.toFixed(2)} s`,
    );
    t.is(counts['0'], undefined, 'every request got an answer within its 5 s deadline');
    t.deepEqual(
      Object.keys(counts).sort(),
      ['200', '503'],
      'only identities and 503s (the outage outlived the 3 s staleness bound)',
    );
    t.true(
      unavailable.every((answer) => answer.contentType.startsWith('application/problem+json')),
      'every 503 is a problem document',
    );
    const lateFailures = answers.filter(
      (answer) => answer.status !== 200 && answer.at > readyAt + 5,
    );
    t.deepEqual(lateFailures, [], 'everything answered 5 s after PostgreSQL was Ready is 200');
    t.true(readyAt - deletedAt < 60, 'the pod is replaced well inside its grace period');
  },
);

// ---------------------------------------------------------------------------------------------
// The drain drill runs in a release of its own, with the data on the shared (NFS stand-in)
// class and nothing at the edge, so the release the other tests use stays where it is.
const drill = { release: 'drill', namespace: 'secretid-drill' };
const drillPostgresPod = `${drill.release}-secretid-postgres-0`;

interface PodList {
  items: Array<{ metadata: { name: string }; spec: { nodeName?: string } }>;
}

/** The PIDs of PostgreSQL postmasters on this machine whose working directory is `dataDirectory`. */
const postmastersOn = (dataDirectory: string) => {
  const target = statSync(dataDirectory);
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const status = readFileSync(join('/proc', entry, 'status'), 'utf8');
      if (!/^Name:\s+postgres$/m.test(status)) continue;
      const parent = /^PPid:\s+(\d+)$/m.exec(status)?.[1] ?? '0';
      // A postmaster's parent is not a postgres process (its backends' parent is the postmaster).
      const parentName = readFileSync(join('/proc', parent, 'status'), 'utf8');
      if (/^Name:\s+postgres$/m.test(parentName)) continue;
      const cwd = statSync(join('/proc', entry, 'cwd'));
      if (cwd.dev === target.dev && cwd.ino === target.ino) found.push(Number(entry));
    } catch {
      // the process ended while it was read
    }
  }
  return found;
};

test.serial(
  "drain of PostgreSQL's node with the data on shared storage: it moves to the other node with its data, never two servers on its data directory (cluster)",
  async (t) => {
    helm([
      'upgrade',
      '--install',
      drill.release,
      chartDirectory,
      '-n',
      drill.namespace,
      '--create-namespace',
      '--wait',
      '--timeout',
      '5m',
      '--set',
      'postgres.persistence.storageClass=shared-path',
      '--set',
      'backup.persistence.storageClass=shared-path',
      '--set',
      'edge.enabled=false',
      '--set',
      'monitoring.enabled=false',
    ]);
    const marker = `written before the drain ${Date.now()}`;
    const write = psql(
      drill.namespace,
      drillPostgresPod,
      `CREATE TABLE IF NOT EXISTS e2e_drain (note text); INSERT INTO e2e_drain VALUES ('${marker}')`,
    );
    t.is(write.status, 0, write.stderr);
    const nodeOf = () =>
      kubectl([
        '-n',
        drill.namespace,
        'get',
        'pod',
        drillPostgresPod,
        '-o',
        'jsonpath={.spec.nodeName}',
      ]);
    const from = nodeOf();
    const claim = kubectl([
      '-n',
      drill.namespace,
      'get',
      'pvc',
      `${drill.release}-secretid-postgres-data`,
      '-o',
      'jsonpath={.spec.volumeName}',
    ]);
    const hostPath = kubectl(['get', 'pv', claim, '-o', 'jsonpath={.spec.hostPath.path}']);
    const dataDirectory = join(hostPath, 'pgdata');
    t.deepEqual(postmastersOn(dataDirectory).length, 1, 'one postmaster before the drain');

    const drain = spawn(
      requireTool('kubectl'),
      ['drain', from, '--ignore-daemonsets', '--delete-emptydir-data', '--timeout=180s'],
      { env: clusterEnvironment(), stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let drainOutput = '';
    drain.stdout.on('data', (chunk) => {
      drainOutput += chunk;
    });
    drain.stderr.on('data', (chunk) => {
      drainOutput += chunk;
    });
    const drained = new Promise<number | null>((resolve) => drain.on('close', resolve));
    try {
      // Watch the data directory on the host until PostgreSQL is Ready on the other node.
      const started = Date.now();
      let most = 0;
      let samples = 0;
      let moved = false;
      let leftAt: number | undefined;
      while (Date.now() - started < 240_000) {
        most = Math.max(most, postmastersOn(dataDirectory).length);
        samples += 1;
        if (samples % 10 === 0) {
          const pods = JSON.parse(
            kubectl([
              '-n',
              drill.namespace,
              'get',
              'pods',
              '-l',
              'app.kubernetes.io/component=postgres',
              '-o',
              'json',
            ]),
          ) as PodList;
          if (leftAt === undefined && !pods.items.some((pod) => pod.spec.nodeName === from))
            leftAt = (Date.now() - started) / 1000;
          moved =
            pods.items.some((pod) => pod.spec.nodeName && pod.spec.nodeName !== from) &&
            podReady(drill.namespace, drillPostgresPod);
          if (moved) break;
        }
        await sleep(100);
      }
      const seconds = (Date.now() - started) / 1000;
      t.log(
        `${from} drained: PostgreSQL off it after ${leftAt?.toFixed(1)} s, Ready on ${nodeOf()} after ${seconds.toFixed(1)} s; ${samples} samples of the data directory, at most ${most} postmaster(s) on it`,
      );
      t.true(moved, `PostgreSQL Ready on another node than ${from}`);
      t.is(most, 1, 'never two postmasters on one data directory');
      t.is(await drained, 0, drainOutput);
      const read = psql(drill.namespace, drillPostgresPod, 'SELECT note FROM e2e_drain');
      t.is(read.status, 0, read.stderr);
      t.true(read.stdout.split('\n').includes(marker), read.stdout);
    } finally {
      drain.kill();
      kubectl(['uncordon', from]);
      helm(['uninstall', drill.release, '-n', drill.namespace, '--wait']);
      kubectl(['delete', 'namespace', drill.namespace, '--wait', '--timeout=180s']);
      // The shared class keeps released volumes (Retain, as NFS exports are kept): remove them.
      const volumes = kubectl([
        'get',
        'pv',
        '-o',
        `jsonpath={range .items[?(@.spec.claimRef.namespace=="${drill.namespace}")]}{.metadata.name} {end}`,
      ]).trim();
      if (volumes) kubectl(['delete', 'pv', ...volumes.split(' ')]);
    }
  },
);
