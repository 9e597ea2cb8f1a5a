/**
 * The chart's guard against two PostgreSQL servers on one data directory, run for real: the
 * PostgreSQL container's command from the render (files/postgres/single-server.sh from the
 * chart's ConfigMap, the lock file on the data volume) in front of an entrypoint that keeps
 * the image contract of chart/README.md (the test cluster's stand-in, e2e/images/), with
 * PostgreSQL 15. A second server on the same volume waits, then refuses and says why, while
 * the first one serves on; once the first has stopped, the second starts.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { giveToServerUser, serverOwnedDirectory } from './helpers/backup.ts';
import { freePort } from './helpers/free-port.ts';
import { renderChart } from './helpers/helm.ts';
import { postgresBin } from './helpers/postgres.ts';

// biome-ignore lint/suspicious/noExplicitAny: rendered Kubernetes objects are plain YAML
type KubeObject = any;

const objects: KubeObject[] = renderChart({ release: 'secretid', namespace: 'field-ops' });
const byComponent = (kind: string, component: string) =>
  objects.find(
    (object) =>
      object.kind === kind && object.metadata.labels?.['app.kubernetes.io/component'] === component,
  );
const container = byComponent('StatefulSet', 'postgres').spec.template.spec.containers.find(
  (candidate: KubeObject) => candidate.name === 'postgres',
);
const dataMount = container.volumeMounts.find((mount: KubeObject) => mount.name === 'data')
  .mountPath as string;
const configMount = container.volumeMounts.find((mount: KubeObject) => mount.name === 'config')
  .mountPath as string;
const script = byComponent('ConfigMap', 'postgres').data['single-server.sh'] as string;
const configVolume = byComponent('StatefulSet', 'postgres').spec.template.spec.volumes.find(
  (volume: KubeObject) => volume.name === 'config',
);

test('the PostgreSQL container starts through the guard, with its lock on the data volume', (t) => {
  t.deepEqual(container.command, [
    'sh',
    `${configMount}/single-server.sh`,
    `${dataMount}/server.lock`,
    '30',
  ]);
  // The script is in the mounted ConfigMap (whose volume names the files it projects).
  t.is(configVolume.configMap.name, byComponent('ConfigMap', 'postgres').metadata.name);
  t.true(
    (configVolume.configMap.items ?? [{ key: 'single-server.sh' }]).some(
      (item: KubeObject) =>
        item.key === 'single-server.sh' && (item.path ?? item.key) === 'single-server.sh',
    ),
    'the config volume projects single-server.sh',
  );
});

const isRoot = process.getuid?.() === 0;
const work = mkdtempSync(join(tmpdir(), 'secretid-single-server-'));
const volume = serverOwnedDirectory('secretid-single-server-volume-');
const running = new Set<ChildProcess>();
test.after.always(() => {
  for (const child of running) child.kill('SIGKILL');
  rmSync(work, { recursive: true, force: true });
  rmSync(volume, { recursive: true, force: true });
});

/** The container's command with the volume here, its wait shortened to `waitSeconds`. */
const startServer = (port: number, waitSeconds: number) => {
  const [shell, , lock] = container.command as string[];
  const args = [
    join(work, 'single-server.sh'),
    (lock as string).replace(dataMount, volume),
    String(waitSeconds),
    '-c',
    'listen_addresses=',
    '-c',
    `unix_socket_directories=${volume}`,
    '-c',
    `port=${port}`,
  ];
  const env = {
    PATH: `${work}:${postgresBin}:/usr/bin:/bin`,
    PGDATA: join(volume, 'pgdata'),
    POSTGRES_PASSWORD: 'single-server-test',
  };
  const child = isRoot
    ? spawn(
        'runuser',
        [
          '-u',
          'postgres',
          '--',
          'env',
          ...Object.entries(env).map(([k, v]) => `${k}=${v}`),
          shell as string,
          ...args,
        ],
        {
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      )
    : spawn(shell as string, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  let output = '';
  child.stdout?.on('data', (chunk) => {
    output += chunk;
  });
  child.stderr?.on('data', (chunk) => {
    output += chunk;
  });
  const exited = new Promise<number | null>((resolve) =>
    child.on('close', (code) => {
      running.delete(child);
      resolve(code);
    }),
  );
  return { exited, output: () => output };
};

const ready = (port: number) =>
  spawnSync(join(postgresBin, 'pg_isready'), ['-q', '-h', volume, '-p', String(port)]).status === 0;
const until = async (what: string, check: () => boolean, timeoutMs = 60_000) => {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
};
/** PostgreSQL's fast shutdown, sent to the postmaster (the PID in its postmaster.pid). */
const stopServer = () => {
  const pid = Number(readFileSync(join(volume, 'pgdata', 'postmaster.pid'), 'utf8').split('\n')[0]);
  process.kill(pid, 'SIGINT');
};

test.serial(
  'a second server on the same data volume waits, then refuses and names the cause; after the first stops, it starts',
  async (t) => {
    writeFileSync(join(work, 'single-server.sh'), script);
    copyFileSync('e2e/images/postgres-entrypoint.sh', join(work, 'docker-entrypoint.sh'));
    spawnSync('chmod', ['755', work, join(work, 'docker-entrypoint.sh')]);
    giveToServerUser(work);
    const [firstPort, secondPort] = [await freePort(), await freePort()];

    const first = startServer(firstPort, 2);
    await until('the first server to accept connections', () => ready(firstPort));
    t.regex(first.output(), /single-server: holding .*server\.lock/);

    const secondStarted = Date.now();
    const second = startServer(secondPort, 2);
    const refused = await second.exited;
    const waited = (Date.now() - secondStarted) / 1000;
    t.is(refused, 1, second.output());
    t.regex(second.output(), /another PostgreSQL server holds .*server\.lock.*refusing to start/);
    t.regex(second.output(), /fence the node first \(docs\/disaster-recovery\.md/);
    t.true(waited >= 2, `it waited for the lock (${waited.toFixed(1)} s)`);
    t.true(ready(firstPort), 'the first server serves on');

    stopServer();
    t.is(await first.exited, 0, first.output());
    const third = startServer(secondPort, 2);
    await until('the second server to start once the first has stopped', () => ready(secondPort));
    t.regex(third.output(), /single-server: holding/);
    stopServer();
    t.is(await third.exited, 0, third.output());
  },
);
