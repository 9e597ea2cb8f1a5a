/**
 * The chart's PostgreSQL configuration and its seed Job's exact commands, run for real: a local
 * PostgreSQL 15 starts with the rendered postgresql.conf and pg_hba.conf and the initdb
 * arguments of the StatefulSet, then the Job's two steps run with the Job's own command and
 * environment (Secret values decoded from the render), and finally the API bundle connects with
 * the API ConfigMap's environment. Only the in-cluster host name is replaced by loopback.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { sql } from 'kysely';
import { bundles } from '../scripts/build.ts';
import { spawnFunction, waitUntilReady } from '../scripts/processes.ts';
import { giveToServerUser, serverOwnedDirectory } from './helpers/backup.ts';
import { freePort } from './helpers/free-port.ts';
import { renderChart } from './helpers/helm.ts';
import { connect } from './helpers/names-database.ts';
import { postgresBin, startPostgres, type TestPostgres } from './helpers/postgres.ts';

// biome-ignore lint/suspicious/noExplicitAny: rendered Kubernetes objects are plain YAML
type KubeObject = any;
type EnvVar = { name: string; value?: string; valueFrom?: KubeObject };

const namespace = 'field-ops';
const objects: KubeObject[] = renderChart({ release: 'secretid', namespace });
const find = (kind: string, component: string) => {
  const found = objects.find(
    (object) =>
      object.kind === kind && object.metadata.labels?.['app.kubernetes.io/component'] === component,
  );
  if (!found) throw new Error(`no ${kind} for ${component} in the render`);
  return found;
};
const postgresConfig = find('ConfigMap', 'postgres');
const credentials = find('Secret', 'credentials');
const statefulSet = find('StatefulSet', 'postgres');
const job = find('Job', 'seed');
const apiConfig = find('ConfigMap', 'api');
const postgresService = objects.find(
  (object) =>
    object.kind === 'Service' &&
    object.spec.clusterIP !== 'None' &&
    object.metadata.labels?.['app.kubernetes.io/component'] === 'postgres',
);
const inClusterHost = `${postgresService.metadata.name}.${namespace}.svc`;
const secretValue = (key: string) => Buffer.from(credentials.data[key], 'base64').toString('utf8');

const postgresContainer = statefulSet.spec.template.spec.containers.find(
  (container: KubeObject) => container.name === 'postgres',
);
const containerEnv = (container: KubeObject) =>
  Object.fromEntries(
    (container.env as EnvVar[]).map(({ name, value, valueFrom }) => {
      if (value !== undefined) return [name, value];
      const ref = valueFrom?.secretKeyRef;
      if (ref?.name !== credentials.metadata.name) throw new Error(`${name}: unknown source`);
      return [name, secretValue(ref.key)];
    }),
  );

let server: TestPostgres;
let scripts: string;
let backupRoot: string;
const backupScripts = find('ConfigMap', 'backup');
const loopback = (text: string) => text.replaceAll(inClusterHost, '127.0.0.1');

test.before(async () => {
  const postgresEnv = containerEnv(postgresContainer);
  // The pod's mounts, as folders here: the scripts (/scripts, /scripts/backup) and the backup
  // volume (/backup, with the folders the init container makes), readable by the server's user.
  scripts = mkdtempSync(join(tmpdir(), 'secretid-scripts-'));
  backupRoot = serverOwnedDirectory('secretid-backup-volume-');
  for (const folder of ['wal', 'dumps', 'base']) {
    mkdirSync(join(backupRoot, folder));
    giveToServerUser(join(backupRoot, folder));
  }
  mkdirSync(join(scripts, 'backup'));
  chmodSync(scripts, 0o755);
  chmodSync(join(scripts, 'backup'), 0o755);
  writeFileSync(join(scripts, 'ensure-roles.sh'), postgresConfig.data['ensure-roles.sh']);
  for (const [file, text] of Object.entries(backupScripts.data as Record<string, string>)) {
    writeFileSync(join(scripts, 'backup', file), text, { mode: 0o755 });
  }
  server = await startPostgres({
    superuserPassword: postgresEnv.POSTGRES_PASSWORD,
    initdbArgs: (postgresEnv.POSTGRES_INITDB_ARGS ?? '').split(' ').filter(Boolean),
    configFile: postgresConfig.data['postgresql.conf']
      .replaceAll('/scripts/backup/', `${join(scripts, 'backup')}/`)
      .replaceAll('/backup/wal', join(backupRoot, 'wal')),
    hbaFile: postgresConfig.data['pg_hba.conf'],
  });
});

test.after.always(() => {
  server?.destroy();
  if (scripts) rmSync(scripts, { recursive: true, force: true });
  if (backupRoot) rmSync(backupRoot, { recursive: true, force: true });
});

/** Runs one of the Job's containers with its command and environment, on loopback. */
const runJobStep = (name: string) => {
  const container = [
    ...job.spec.template.spec.initContainers,
    ...job.spec.template.spec.containers,
  ].find((candidate: KubeObject) => candidate.name === name);
  const env = Object.fromEntries(
    Object.entries(containerEnv(container)).map(([key, value]) => [key, loopback(String(value))]),
  );
  if (env.PGHOST) env.PGHOST = '127.0.0.1';
  if (env.PGPORT) env.PGPORT = String(server.port);
  if (env.DATABASE_URL) env.DATABASE_URL = env.DATABASE_URL.replace(/:\d+\//, `:${server.port}/`);
  // The image paths of the commands, mapped to the same files in this repository.
  const [command, ...args] = (container.command as string[]).map((part) =>
    part === '/scripts/ensure-roles.sh'
      ? join(scripts, 'ensure-roles.sh')
      : part === 'seed.mjs'
        ? bundles.seed.output
        : part === 'node'
          ? process.execPath
          : part,
  );
  return spawnSync(command as string, args, {
    env: { PATH: process.env.PATH ?? '', ...env },
    encoding: 'utf8',
    timeout: 60_000,
  });
};

test.serial('PostgreSQL runs with the configuration the chart ships', (t) => {
  const show = (setting: string) => server.psql(`SHOW ${setting}`).trim();
  t.is(show('password_encryption'), 'scram-sha-256');
  t.is(show('max_connections'), '100');
  t.is(show('shared_buffers'), '128MB');
  t.is(show('statement_timeout'), '30s');
  t.is(show('data_checksums'), 'on', 'the StatefulSet initdb arguments enable checksums');
  t.is(show('wal_level'), 'replica');
  t.regex(show('hba_file'), /pg_hba\.conf$/);
});

test.serial('network clients must prove a password (SCRAM)', (t) => {
  const attempt = (url: string) =>
    spawnSync('psql', ['-X', '-At', url, '-c', 'SELECT 1'], {
      encoding: 'utf8',
      env: { PATH: process.env.PATH ?? '' },
    });
  t.is(attempt(server.url()).status, 0);
  const none = attempt(`postgres://postgres@127.0.0.1:${server.port}/postgres`);
  t.not(none.status, 0);
  t.regex(none.stderr, /password/);
  const wrong = attempt(`postgres://postgres:wrong@127.0.0.1:${server.port}/postgres`);
  t.regex(wrong.stderr, /password authentication failed/);
});

test.serial('the seed Job creates roles and data, and a rerun changes nothing', (t) => {
  for (const round of [1, 2]) {
    const roles = runJobStep('ensure-roles');
    t.is(roles.status, 0, `round ${round}: ${roles.stderr}`);
    t.regex(roles.stdout, /ensure-roles: done/);
    const seed = runJobStep('seed');
    t.is(seed.status, 0, `round ${round}: ${seed.stderr}`);
    t.regex(seed.stdout, /seed complete/);
    if (round === 2) {
      t.regex(seed.stdout, /already up to date/);
      t.regex(seed.stdout, /0 removed; surnames: 1000 written, 0 removed/);
    }
  }
});

test.serial(
  'the API reads the names with the ConfigMap and the reader password, and only reads',
  async (t) => {
    const databaseUrl = loopback(apiConfig.data.DATABASE_URL).replace(/:\d+\//, `:${server.port}/`);
    const readerPassword = secretValue('reader-password');
    const readerUrl = new URL(databaseUrl);
    readerUrl.password = readerPassword;
    const db = connect(readerUrl.toString());
    try {
      const { rows } = await sql<{ n: string }>`SELECT count(*) AS n FROM last_names`.execute(db);
      t.is(Number(rows[0]?.n), 1000);
      // Its sessions start read-only; past that, it has no grant to write
      // (test/reader-role.test.ts tries each write in a read-write transaction).
      await t.throwsAsync(sql`DELETE FROM last_names`.execute(db), {
        message: /read-only transaction/,
      });
    } finally {
      await db.destroy();
    }
    const api = spawnFunction({
      name: 'api',
      script: bundles.api.output,
      port: await freePort(),
      env: { ...apiConfig.data, DATABASE_URL: databaseUrl, PGPASSWORD: readerPassword },
    });
    try {
      await waitUntilReady(api, `http://127.0.0.1:${api.port}/readyz`);
      const response = await fetch(`http://127.0.0.1:${api.port}/randomName`);
      t.is(response.status, 200);
      t.truthy((await response.json()).fullName);
    } finally {
      t.is(await api.stop(), 0);
    }
  },
);

test.serial("the chart's archive_command archives WAL onto the backup volume", async (t) => {
  t.is(server.psql('SHOW archive_mode').trim(), 'on');
  t.is(server.psql('SHOW archive_timeout').trim(), '1min');
  // The first sleep of the checkpointer after a start is checkpoint_timeout (e2e/tests/faults).
  t.is(server.psql('SHOW checkpoint_timeout').trim(), '1min');
  server.psql('SELECT pg_switch_wal()');
  const deadline = Date.now() + 15_000;
  let archived = 0;
  while (Date.now() < deadline) {
    archived = Number(server.psql('SELECT archived_count FROM pg_stat_archiver').trim());
    if (archived > 0) break;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  t.true(archived > 0, 'PostgreSQL archived a segment');
  t.is(Number(server.psql('SELECT failed_count FROM pg_stat_archiver').trim()), 0);
  t.true(readdirSync(join(backupRoot, 'wal')).some((file) => /^[0-9A-F]{24}$/.test(file)));
});

/** Runs a backup CronJob's container with its command and environment, on loopback. */
const runCronJob = (suffix: string) => {
  const cronJob = objects.find(
    (object) => object.kind === 'CronJob' && object.metadata.name.endsWith(suffix),
  );
  const container = cronJob.spec.jobTemplate.spec.template.spec.containers[0];
  const env = containerEnv(container);
  env.PGHOST = '127.0.0.1';
  env.PGPORT = String(server.port);
  for (const key of ['BACKUP_DIR', 'WAL_ARCHIVE_DIR']) {
    env[key] = String(env[key]).replace(/^\/backup/, backupRoot);
  }
  const [command, ...args] = (container.command as string[]).map((part) =>
    part.replace(/^\/scripts\//, `${join(scripts, 'backup')}/`),
  );
  // In the image the PostgreSQL tools are on PATH; Debian keeps some in postgresBin only.
  return spawnSync(command as string, args, {
    env: { PATH: `${postgresBin}:${process.env.PATH ?? ''}`, ...env },
    encoding: 'utf8',
    timeout: 120_000,
  });
};

test.serial(
  "the dump CronJob's command writes a checksummed dump with the chart's settings",
  (t) => {
    const result = runCronJob('-backup');
    t.is(result.status, 0, result.stderr);
    const dumps = readdirSync(join(backupRoot, 'dumps'));
    t.true(
      dumps.some((file) => /^secretid-\d{8}T\d{6}Z\.dump$/.test(file)),
      dumps.join(', '),
    );
    t.true(dumps.some((file) => file.endsWith('.dump.sha256')));
  },
);

test.serial(
  "the base-backup CronJob's command connects for replication through the chart's pg_hba.conf",
  (t) => {
    const result = runCronJob('-basebackup');
    t.is(result.status, 0, `${result.stdout}${result.stderr}`);
    const backups = readdirSync(join(backupRoot, 'base'));
    t.is(backups.length, 1);
    t.true(readdirSync(join(backupRoot, 'base', backups[0] as string)).includes('backup_manifest'));
  },
);
