/**
 * Measures the chart's backup and restore scripts on real PostgreSQL 15 servers: the seeded
 * names database and a synthetic database of about 1 GB (too slow for the test suite, hence a
 * script). For each: backup-dump.sh, restore-dump.sh into a new database, base-backup.sh,
 * then a point-in-time recovery (restore-pitr.sh, start, replay, promotion), each result
 * checked against the source. Prints a Markdown table for docs/disaster-recovery.md.
 *
 *   npx node test/backup-measure.ts                  # seeded + ~1 GB synthetic (about 5 min)
 *   npx node test/backup-measure.ts --synthetic-mb 200
 *   npx node test/backup-measure.ts --seeded-only
 * (`npx node` is the project's Node 24, which runs TypeScript directly.)
 */
import { rmSync, statSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  archiveCommand,
  mustSucceed,
  passwordHba,
  psqlUrl,
  runBackupScript,
  serverOwnedDirectory,
  startDataDirectory,
  waitFor,
} from './helpers/backup.ts';
import { createNamesDatabase } from './helpers/names-database.ts';
import { startPostgres, type TestPostgres } from './helpers/postgres.ts';

const { values: options } = parseArgs({
  options: {
    'synthetic-mb': { type: 'string', default: '1024' },
    'seeded-only': { type: 'boolean', default: false },
  },
});
const password = 'measure-superuser-password';
const long = 1_800_000;
let serverVersion = '';

/** Row count and an order-independent hash sum per table: cheap enough for 1 GB. */
const fingerprint = (url: string) =>
  psqlUrl(
    url,
    `SELECT string_agg(format('%s', tablename), ',' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'public'`,
  )
    .split(',')
    .filter(Boolean)
    .map(
      (table) =>
        `${table}=${psqlUrl(url, `SELECT count(*) || ':' || coalesce(sum(hashtext(t::text)::bigint), 0) FROM public.${table} t`)}`,
    )
    .join(' ');

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const mebibytes = (bytes: number) =>
  bytes < 1024 * 1024
    ? `${(bytes / 1024).toFixed(0)} KiB`
    : `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
const timed = <T>(run: () => T): [T, number] => {
  const started = performance.now();
  const value = run();
  return [value, performance.now() - started];
};
const asyncTimed = async <T>(run: () => Promise<T>): Promise<[T, number]> => {
  const started = performance.now();
  const value = await run();
  return [value, performance.now() - started];
};

const reported = (output: string, pattern: RegExp) =>
  Number(pattern.exec(output)?.[1] ?? Number.NaN);

interface Row {
  label: string;
  databaseBytes: number;
  dumpMs: number;
  dumpBytes: number;
  restoreMs: number;
  pgRestoreMs: number;
  baseBackupMs: number;
  pgBasebackupMs: number;
  baseBackupBytes: number;
  prepareMs: number;
  replayMs: number;
}

const measure = async (
  label: string,
  database: string,
  fill: (server: TestPostgres) => Promise<void>,
  changeAfterBackup: (server: TestPostgres, step: number) => void,
): Promise<Row> => {
  const archive = serverOwnedDirectory('secretid-measure-wal-');
  const backupDir = serverOwnedDirectory('secretid-measure-backup-');
  const cleanup: string[] = [];
  const server = await startPostgres({
    superuserPassword: password,
    hbaFile: passwordHba,
    // fsync on, as in the chart (the test helper turns it off unless told otherwise).
    settings: { fsync: 'on', max_wal_size: '4GB', archive_timeout: '60s' },
  });
  try {
    console.error(`[${label}] filling ${database}`);
    await fill(server);
    // Archiving from here on (the load itself is not archived: the base backup covers it).
    server.psql('ALTER SYSTEM SET archive_mode = on');
    server.psql(`ALTER SYSTEM SET archive_command = '${archiveCommand(archive)}'`);
    server.stop();
    server.start();
    server.psql('CHECKPOINT');
    serverVersion = server.psql('SHOW server_version').trim();
    const databaseBytes = Number(server.psql(`SELECT pg_database_size('${database}')`).trim());
    const connection = {
      PGHOST: '127.0.0.1',
      PGPORT: String(server.port),
      PGUSER: 'postgres',
      PGPASSWORD: password,
    };
    const source = fingerprint(server.url(database));

    console.error(`[${label}] backup-dump.sh`);
    const dump = mustSucceed(
      runBackupScript(
        'backup-dump.sh',
        [],
        { ...connection, DATABASE: database, BACKUP_DIR: backupDir },
        { asServerUser: true, timeoutMs: long },
      ),
      'backup-dump.sh',
    );
    const dumpFile = /wrote (\S+\.dump):/.exec(dump.stdout)?.[1] ?? '';
    console.error(`[${label}] restore-dump.sh`);
    const restore = mustSucceed(
      runBackupScript('restore-dump.sh', [dumpFile, `${database}_restored`], connection, {
        asServerUser: true,
        timeoutMs: long,
      }),
      'restore-dump.sh',
    );
    const restored = fingerprint(server.url(`${database}_restored`));
    if (restored !== source) throw new Error(`restore differs:\n${source}\n${restored}`);
    server.psql(`DROP DATABASE ${database}_restored`);

    console.error(`[${label}] base-backup.sh`);
    const base = mustSucceed(
      runBackupScript(
        'base-backup.sh',
        [],
        { ...connection, BACKUP_DIR: backupDir, WAL_ARCHIVE_DIR: archive },
        { asServerUser: true, timeoutMs: long },
      ),
      'base-backup.sh',
    );
    const basePath = /wrote (\S+\/base\/\d{8}T\d{6}Z):/.exec(base.stdout)?.[1] ?? '';
    const baseBackupBytes = statSync(join(basePath, 'base.tar.gz')).size;

    changeAfterBackup(server, 1);
    server.psql('SELECT pg_switch_wal()');
    const target = server.psql('SELECT clock_timestamp()').trim();
    const atTarget = fingerprint(server.url(database));
    await new Promise((resolve) => setTimeout(resolve, 1100));
    changeAfterBackup(server, 2);
    const last = server.psql('SELECT pg_walfile_name(pg_switch_wal())').trim();
    await waitFor(
      `${last} archived`,
      () => server.psql('SELECT last_archived_wal FROM pg_stat_archiver').trim() >= last,
      120_000,
    );
    server.stop();

    console.error(`[${label}] restore-pitr.sh`);
    const dataDirectory = serverOwnedDirectory('secretid-measure-restored-');
    cleanup.push(dataDirectory);
    const prepare = mustSucceed(
      runBackupScript(
        'restore-pitr.sh',
        [],
        {
          PGDATA: dataDirectory,
          WAL_ARCHIVE_DIR: archive,
          BASE_BACKUP: basePath,
          TARGET_TIME: target,
        },
        { asServerUser: true, timeoutMs: long },
      ),
      'restore-pitr.sh',
    );
    const [recovered, replayMs] = await asyncTimed(async () => {
      const started = await startDataDirectory(dataDirectory, {
        password,
        settings: { fsync: 'on', archive_mode: 'off' },
        startTimeoutSeconds: 1200,
      });
      await waitFor(
        'promotion',
        () => psqlUrl(started.url(), 'SELECT pg_is_in_recovery()') === 'f',
        600_000,
      );
      return started;
    });
    try {
      const after = fingerprint(recovered.url(database));
      if (after !== atTarget) throw new Error(`PITR result differs:\n${atTarget}\n${after}`);
    } finally {
      recovered.stop();
    }
    return {
      label,
      databaseBytes,
      dumpMs: dump.milliseconds,
      dumpBytes: statSync(dumpFile).size,
      restoreMs: restore.milliseconds,
      pgRestoreMs: reported(restore.stdout, /pg_restore took (\d+) ms/),
      baseBackupMs: base.milliseconds,
      pgBasebackupMs: reported(base.stdout, /pg_basebackup finished in (\d+) ms/),
      baseBackupBytes,
      prepareMs: prepare.milliseconds,
      replayMs,
    };
  } finally {
    server.destroy();
    for (const path of [archive, backupDir, ...cleanup])
      rmSync(path, { recursive: true, force: true });
  }
};

const rows: Row[] = [];
rows.push(
  await measure(
    'seeded names database',
    'secretid',
    async (server) => {
      await createNamesDatabase(server, 'secretid');
      server.psql('CREATE TABLE drill (id int PRIMARY KEY, step int NOT NULL)', 'secretid');
    },
    (server, step) =>
      server.psql(
        `INSERT INTO drill SELECT g, ${step} FROM generate_series(${step * 1000}, ${step * 1000 + 99}) g`,
        'secretid',
      ),
  ),
);
if (!options['seeded-only']) {
  const megabytes = Number(options['synthetic-mb']);
  // About 235 bytes per row on disk (heap and primary key) with these columns.
  const rowCount = Math.round((megabytes * 1024 * 1024) / 235);
  rows.push(
    await measure(
      `synthetic ${megabytes} MB target (${rowCount.toLocaleString('en')} rows)`,
      'synthetic',
      async (server) => {
        server.psql('CREATE DATABASE synthetic');
        const [, ms] = timed(() =>
          server.psql(
            `CREATE TABLE agents (id bigint PRIMARY KEY, codename text NOT NULL, dossier text NOT NULL, issued_at timestamptz NOT NULL);
             INSERT INTO agents SELECT g, md5(g::text), md5(g::text || 'a') || md5(g::text || 'b') || md5(g::text || 'c') || md5(g::text || 'd'),
                    timestamptz '2020-01-01 00:00:00+00' + g * interval '1 second'
             FROM generate_series(1, ${rowCount}) g`,
            'synthetic',
          ),
        );
        server.psql('VACUUM ANALYZE agents', 'synthetic');
        console.error(`[synthetic] loaded in ${seconds(ms)}`);
      },
      (server, step) =>
        server.psql(
          `UPDATE agents SET codename = codename || '-${step}' WHERE id % 100 = ${step}`,
          'synthetic',
        ),
    ),
  );
}

console.log(
  `\nMeasured ${new Date().toISOString()} on ${cpus().length} CPUs (${cpus()[0]?.model ?? 'unknown'}), PostgreSQL ${serverVersion}, fsync=on, local virtio disk\n`,
);
console.log(
  '| database | size | backup-dump.sh | dump file | restore-dump.sh, new database (of which pg_restore) | base-backup.sh (of which pg_basebackup) | base.tar.gz | restore-pitr.sh | start, replay, promotion | PITR total |',
);
console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
for (const row of rows) {
  console.log(
    `| ${row.label} | ${mebibytes(row.databaseBytes)} | ${seconds(row.dumpMs)} | ${mebibytes(row.dumpBytes)} | ${seconds(row.restoreMs)} (${seconds(row.pgRestoreMs)}) | ${seconds(row.baseBackupMs)} (${seconds(row.pgBasebackupMs)}) | ${mebibytes(row.baseBackupBytes)} | ${seconds(row.prepareMs)} | ${seconds(row.replayMs)} | ${seconds(row.prepareMs + row.replayMs)} |`,
  );
}
