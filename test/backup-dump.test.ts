/**
 * The chart's logical backup scripts (chart/files/backup/backup-dump.sh, restore-dump.sh) run
 * for real against a PostgreSQL 15 server holding the seeded names database plus a table of
 * awkward types: dump, drop, restore and compare every table's checksum; restore over an
 * existing database; refuse corrupted and truncated dumps without touching the target;
 * retention; configuration errors; no partial file after a failed dump.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import test from 'ava';
import {
  giveToServerUser,
  holdTableLock,
  mustSucceed,
  passwordHba,
  psqlUrl,
  runBackupScript,
  serverOwnedDirectory,
  startBackupScript,
  tableChecksums,
  waitFor,
} from './helpers/backup.ts';
import { createNamesDatabase } from './helpers/names-database.ts';
import { startPostgres, type TestPostgres } from './helpers/postgres.ts';

const password = 'dump-test-superuser-password';
let server: TestPostgres;
let ownerPassword = '';
const scratch: string[] = [];
const temporaryDirectory = () => {
  const path = mkdtempSync(join(tmpdir(), 'secretid-dumps-'));
  scratch.push(path);
  return path;
};
const clones = ['roundtrip', 'existing', 'corrupt', 'retention', 'noowner', 'interrupted'] as const;

test.before(async () => {
  server = await startPostgres({ superuserPassword: password, hbaFile: passwordHba });
  const names = await createNamesDatabase(server, 'secretid');
  ownerPassword = decodeURIComponent(new URL(names.ownerUrl).password);
  // A table of the types a names table does not have: quotes, newlines, non-ASCII, NULLs,
  // jsonb, bytea, arrays, numeric, a sequence, an index, a view and a comment.
  server.psql(
    `CREATE TABLE agent_assignments (
       id bigserial PRIMARY KEY,
       codename text NOT NULL,
       issued_at timestamptz NOT NULL,
       details jsonb,
       photo bytea,
       score numeric(12, 4),
       tags text[]
     );
     INSERT INTO agent_assignments (codename, issued_at, details, photo, score, tags)
     SELECT format('agent %s ''quoted'' %s', g, CASE WHEN g % 7 = 0 THEN E'line\\nbreak' ELSE 'Zoë Ångström' END),
            timestamptz '2024-01-01 00:00:00+00' + g * interval '37 minutes',
            CASE WHEN g % 5 = 0 THEN NULL ELSE jsonb_build_object('n', g, 'cover', md5(g::text)) END,
            decode(md5(g::text), 'hex'),
            g / 7.0,
            ARRAY['field', g::text]
     FROM generate_series(1, 2000) AS g;
     CREATE INDEX agent_assignments_codename ON agent_assignments (codename);
     CREATE VIEW agent_codenames AS SELECT id, codename FROM agent_assignments;
     COMMENT ON TABLE agent_assignments IS 'test data for the backup drill';
     ALTER TABLE agent_assignments OWNER TO secretid_owner;
     ALTER VIEW agent_codenames OWNER TO secretid_owner;`,
    'secretid',
  );
  for (const clone of clones) {
    server.psql(`CREATE DATABASE ${clone} TEMPLATE secretid OWNER secretid_owner`);
  }
});

test.after.always(() => {
  server?.destroy();
  for (const path of scratch) rmSync(path, { recursive: true, force: true });
});

const connection = () => ({
  PGHOST: '127.0.0.1',
  PGPORT: String(server.port),
  PGUSER: 'postgres',
  PGPASSWORD: password,
});
const dump = (database: string, backupDir: string, extra: Record<string, string> = {}) =>
  runBackupScript('backup-dump.sh', [], {
    ...connection(),
    DATABASE: database,
    BACKUP_DIR: backupDir,
    ...extra,
  });
const restore = (file: string, target: string, extra: Record<string, string> = {}) =>
  runBackupScript('restore-dump.sh', [file, target], { ...connection(), ...extra });
const dumpsIn = (backupDir: string) => readdirSync(join(backupDir, 'dumps')).sort();
const writtenDump = (output: string) => {
  const match = /wrote (\S+\.dump):/.exec(output);
  if (!match?.[1]) throw new Error(`no dump file in the output:\n${output}`);
  return match[1];
};
const databaseExists = (name: string) =>
  psqlUrl(server.url(), `SELECT count(*) FROM pg_database WHERE datname = '${name}'`) === '1';
const facts = (database: string) =>
  psqlUrl(
    server.url(database),
    `SELECT (SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()),
            (SELECT string_agg(tablename || ':' || tableowner, ',' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'public'),
            has_table_privilege('secretid_reader', 'public.first_names', 'SELECT'),
            has_table_privilege('secretid_reader', 'public.agent_assignments', 'SELECT'),
            (SELECT last_value FROM agent_assignments_id_seq),
            obj_description('agent_assignments'::regclass),
            (SELECT count(*) FROM agent_codenames),
            (SELECT count(*) FROM pg_indexes WHERE indexname = 'agent_assignments_codename')`,
  );

test('dump, drop, restore: every table comes back identical', (t) => {
  const backupDir = temporaryDirectory();
  const backup = mustSucceed(dump('roundtrip', backupDir), 'backup-dump.sh');
  t.regex(backup.stdout, /wrote \S+\/dumps\/roundtrip-\d{8}T\d{6}Z\.dump: \d+ bytes/);
  t.regex(backup.stdout, /done in \d+ ms/);
  const file = writtenDump(backup.stdout);
  t.deepEqual(dumpsIn(backupDir), [basename(file), `${basename(file)}.sha256`]);
  // The checksum file is sha256sum's own format: `sha256sum --check` accepts it as it is.
  execFileSync('sha256sum', ['--check', '--strict', `${basename(file)}.sha256`], {
    cwd: join(backupDir, 'dumps'),
  });

  const before = tableChecksums(server.url('roundtrip'));
  t.true(Object.keys(before).length >= 5, `tables: ${Object.keys(before)}`);
  for (const table of ['first_names', 'last_names', 'name_sources', 'agent_assignments']) {
    t.regex(before[table] ?? '', /^[1-9]\d*:[0-9a-f]{32}$/, table);
  }
  const factsBefore = facts('roundtrip');

  server.psql('DROP DATABASE roundtrip WITH (FORCE)');
  t.false(databaseExists('roundtrip'));

  const restored = mustSucceed(restore(file, 'roundtrip'), 'restore-dump.sh');
  t.regex(restored.stdout, /checksum ok/);
  t.regex(restored.stdout, /creating database roundtrip owned by secretid_owner/);
  t.regex(restored.stdout, /restored .* into the new database roundtrip: \d+ tables/);
  t.deepEqual(tableChecksums(server.url('roundtrip')), before);
  t.is(facts('roundtrip'), factsBefore);
  t.log(
    `seeded database: backup ${backup.milliseconds.toFixed(0)} ms, restore ${restored.milliseconds.toFixed(0)} ms`,
  );
});

test('restore into an existing database replaces what the dump holds', (t) => {
  const backupDir = temporaryDirectory();
  const file = writtenDump(mustSucceed(dump('existing', backupDir), 'backup-dump.sh').stdout);
  const before = tableChecksums(server.url('existing'));

  server.psql(
    `DELETE FROM agent_assignments WHERE id % 2 = 0;
     UPDATE first_names SET name = name || 'x' WHERE rank < 10;
     INSERT INTO agent_assignments (codename, issued_at) VALUES ('intruder', now());
     CREATE TABLE scratch_notes (note text); INSERT INTO scratch_notes VALUES ('only in target');`,
    'existing',
  );
  const changed = tableChecksums(server.url('existing'));
  t.not(changed.agent_assignments, before.agent_assignments);
  t.not(changed.first_names, before.first_names);

  const restored = mustSucceed(restore(file, 'existing'), 'restore-dump.sh');
  t.regex(restored.stdout, /into the existing database existing/);
  const after = tableChecksums(server.url('existing'));
  // Objects the dump does not hold are left alone (documented); the rest is as dumped.
  t.is(psqlUrl(server.url('existing'), 'SELECT note FROM scratch_notes'), 'only in target');
  delete after.scratch_notes;
  t.deepEqual(after, before);
});

test('NO_OWNER=true gives every object to the connecting user and restores no grants', (t) => {
  const backupDir = temporaryDirectory();
  const file = writtenDump(mustSucceed(dump('noowner', backupDir), 'backup-dump.sh').stdout);
  const restored = mustSucceed(
    restore(file, 'noowner_copy', { NO_OWNER: 'true' }),
    'restore-dump.sh with NO_OWNER',
  );
  t.regex(restored.stdout, /creating database noowner_copy owned by postgres/);
  t.deepEqual(tableChecksums(server.url('noowner_copy')), tableChecksums(server.url('noowner')));
  t.is(
    psqlUrl(
      server.url('noowner_copy'),
      `SELECT string_agg(DISTINCT tableowner, ',') || ' ' || pg_get_userbyid(datdba)
       FROM pg_tables, pg_database WHERE schemaname = 'public' AND datname = current_database() GROUP BY datdba`,
    ),
    'postgres postgres',
  );
  t.is(
    psqlUrl(
      server.url('noowner_copy'),
      "SELECT has_table_privilege('secretid_reader', 'public.first_names', 'SELECT')",
    ),
    'f',
  );
});

test('a corrupted or truncated dump is refused and the target stays untouched', (t) => {
  const backupDir = temporaryDirectory();
  const file = writtenDump(mustSucceed(dump('corrupt', backupDir), 'backup-dump.sh').stdout);
  // Changed after the dump, so a restore that went ahead would visibly undo this.
  server.psql(
    "INSERT INTO agent_assignments (codename, issued_at) VALUES ('after the dump', now())",
    'corrupt',
  );
  const target = tableChecksums(server.url('corrupt'));
  const original = readFileSync(file);
  const damaged = temporaryDirectory();
  const variant = (name: string, bytes: Buffer, checksum: 'original' | 'recomputed' | 'none') => {
    const path = join(damaged, `${name}.dump`);
    writeFileSync(path, bytes);
    if (checksum === 'original') copyFileSync(`${file}.sha256`, `${path}.sha256`);
    if (checksum === 'recomputed') {
      const sum = execFileSync('sha256sum', [path], { encoding: 'utf8' }).split(' ')[0];
      writeFileSync(`${path}.sha256`, `${sum}  ${basename(path)}\n`);
    }
    return path;
  };
  const flipped = Buffer.from(original);
  const middle = Math.floor(flipped.length / 2);
  for (let i = middle; i < middle + 16; i++) flipped[i] = (flipped[i] ?? 0) ^ 0xff;
  const truncated = original.subarray(0, Math.floor(original.length * 0.6));

  const cases = [
    { name: 'flipped', bytes: flipped, checksum: 'original', message: /CHECKSUM MISMATCH/ },
    { name: 'truncated', bytes: truncated, checksum: 'original', message: /CHECKSUM MISMATCH/ },
    // Damage before the checksum was taken: the structural checks must still catch it.
    { name: 'flipped-resummed', bytes: flipped, checksum: 'recomputed', message: /corrupt/ },
    { name: 'truncated-resummed', bytes: truncated, checksum: 'recomputed', message: /corrupt/ },
    { name: 'unsummed', bytes: original, checksum: 'none', message: /\.sha256 is missing/ },
  ] as const;
  for (const { name, bytes, checksum, message } of cases) {
    const path = variant(name, bytes, checksum);
    for (const into of ['corrupt', 'never_created']) {
      const result = restore(path, into);
      t.is(result.status, 1, `${name} into ${into}:\n${result.output}`);
      t.regex(result.stderr, message, name);
      t.regex(result.stderr, /refusing to restore/, name);
      t.regex(result.stderr, /Nothing was changed/, name);
      t.notRegex(result.stdout, /creating database|restoring/, name);
    }
    t.deepEqual(tableChecksums(server.url('corrupt')), target, `${name} changed the target`);
    t.false(databaseExists('never_created'), `${name} created a database`);
  }
  // The intact dump still restores (the refusals above were about the damage, nothing else).
  mustSucceed(restore(file, 'corrupt'), 'restore-dump.sh with the intact dump');
  t.notDeepEqual(tableChecksums(server.url('corrupt')), target);
});

test('a restore that fails halfway rolls back and drops the database it created', (t) => {
  // A dump whose objects belong to a role that no longer exists: ALTER ... OWNER TO fails.
  server.psql('CREATE ROLE doomed');
  server.psql('CREATE DATABASE doomed_source OWNER doomed');
  server.psql('CREATE DATABASE doomed_existing');
  server.psql(
    'CREATE TABLE kept (id int); INSERT INTO kept VALUES (1); ALTER TABLE kept OWNER TO doomed',
    'doomed_source',
  );
  const backupDir = temporaryDirectory();
  const file = writtenDump(mustSucceed(dump('doomed_source', backupDir), 'backup-dump.sh').stdout);
  server.psql('DROP DATABASE doomed_source');
  server.psql('DROP ROLE doomed');
  server.psql(
    'CREATE TABLE untouched (note text); INSERT INTO untouched VALUES ($$as before$$)',
    'doomed_existing',
  );
  const existingBefore = tableChecksums(server.url('doomed_existing'));

  const fresh = restore(file, 'doomed_copy');
  t.is(fresh.status, 1, fresh.output);
  t.regex(fresh.stdout, /creating database doomed_copy owned by postgres/);
  t.regex(fresh.stderr, /role "doomed" does not exist/);
  t.regex(fresh.stderr, /pg_restore failed; the transaction was rolled back/);
  t.regex(fresh.stderr, /dropping the database doomed_copy this run created/);
  t.false(databaseExists('doomed_copy'));

  const existing = restore(file, 'doomed_existing');
  t.is(existing.status, 1, existing.output);
  t.deepEqual(tableChecksums(server.url('doomed_existing')), existingBefore);
  t.true(databaseExists('doomed_existing'));
});

test('retention keeps the newest KEEP_DUMPS dumps of the database and nothing else', (t) => {
  // Like the chart's CronJob: as the server's OS user (uid 999 there), connected as the
  // database's owner role rather than the superuser.
  const backupDir = serverOwnedDirectory('secretid-dumps-');
  scratch.push(backupDir);
  const dumps = join(backupDir, 'dumps');
  mkdirSync(dumps);
  const old = ['20200101T000000Z', '20210101T000000Z', '20220101T000000Z'];
  for (const stamp of old) {
    writeFileSync(join(dumps, `retention-${stamp}.dump`), 'old');
    writeFileSync(join(dumps, `retention-${stamp}.dump.sha256`), 'old');
  }
  writeFileSync(join(dumps, 'retention2-20190101T000000Z.dump'), 'another database');
  writeFileSync(join(dumps, 'notes.txt'), 'not a dump');
  giveToServerUser(backupDir);

  const result = runBackupScript(
    'backup-dump.sh',
    [],
    {
      ...connection(),
      PGUSER: 'secretid_owner',
      PGPASSWORD: ownerPassword,
      DATABASE: 'retention',
      BACKUP_DIR: backupDir,
      KEEP_DUMPS: '2',
    },
    { asServerUser: true },
  );
  mustSucceed(result, 'backup-dump.sh as the server user and the owner role');
  t.regex(result.stdout, /as secretid_owner to /);
  const newest = basename(writtenDump(result.stdout));
  t.regex(result.stdout, /retention: kept 2 of at most 2 dumps of retention, deleted 2/);
  t.deepEqual(
    dumpsIn(backupDir),
    [
      newest,
      `${newest}.sha256`,
      'notes.txt',
      'retention-20220101T000000Z.dump',
      'retention-20220101T000000Z.dump.sha256',
      'retention2-20190101T000000Z.dump',
    ].sort(),
  );
});

test('a failed dump exits non-zero and leaves no file behind', (t) => {
  const backupDir = temporaryDirectory();
  const missing = dump('no_such_database', backupDir, { WAIT_SECONDS: '0' });
  t.is(missing.status, 1, missing.output);
  t.regex(missing.stderr, /pg_dump of no_such_database failed/);
  t.regex(missing.stderr, /no dump was written/);
  t.deepEqual(dumpsIn(backupDir), []);

  const refused = dump('roundtrip', backupDir, { PGPASSWORD: 'wrong', WAIT_SECONDS: '0' });
  t.is(refused.status, 1, refused.output);
  t.regex(refused.stderr, /password authentication failed|pg_dump of roundtrip failed/);
  t.deepEqual(dumpsIn(backupDir), []);
});

test('TERM while pg_dump waits on a lock stops pg_dump at once: exit 143, no partial file, within the grace period', async (t) => {
  const backupDir = temporaryDirectory();
  const lock = await holdTableLock(server.url('interrupted'), 'agent_assignments');
  const waitingDumps = () =>
    psqlUrl(
      server.url(),
      "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg_dump' AND datname = 'interrupted' AND wait_event_type = 'Lock'",
    );
  try {
    const script = startBackupScript('backup-dump.sh', [], {
      ...connection(),
      DATABASE: 'interrupted',
      BACKUP_DIR: backupDir,
    });
    await waitFor('pg_dump waiting on the lock', () => waitingDumps() === '1', 30_000);
    t.true(
      readdirSync(join(backupDir, 'dumps')).some((file) => file.endsWith('.partial')),
      'pg_dump has begun its file',
    );
    // As the kubelet signals a container's PID 1: bash alone. Kubernetes' default grace
    // period is 30 s; the lock is held for 300 s, so only a stopped pg_dump lets it exit.
    const signalled = performance.now();
    script.signal('SIGTERM');
    const outcome = await Promise.race([
      script.result,
      new Promise<'still running'>((resolve) => setTimeout(() => resolve('still running'), 30_000)),
    ]);
    t.not(
      outcome,
      'still running',
      `backup-dump.sh outlived the grace period:\n${script.output()}`,
    );
    if (outcome === 'still running') return;
    t.is(outcome.status, 143, outcome.output);
    t.regex(outcome.stderr, /received SIGTERM; stopping the running step \(pid \d+\)/);
    t.regex(outcome.stderr, /no dump was written/);
    t.deepEqual(dumpsIn(backupDir), [], 'no partial file or checksum left');
    t.log(`exited ${Math.round(performance.now() - signalled)} ms after SIGTERM, pg_dump stopped`);
    const leftover = spawnSync('pgrep', ['-f', `--file=${backupDir}/`], { encoding: 'utf8' });
    t.is(leftover.stdout.trim(), '', 'no pg_dump left running');
  } finally {
    await lock.release();
  }
});

test('configuration errors name what is missing', (t) => {
  const backupDir = temporaryDirectory();
  const cases: Array<[Record<string, string>, number, RegExp]> = [
    [{ BACKUP_DIR: backupDir }, 2, /DATABASE is required/],
    [{ DATABASE: 'secretid' }, 2, /BACKUP_DIR is required/],
    [{ DATABASE: 'secretid', BACKUP_DIR: backupDir, PGPASSWORD: '' }, 2, /PGPASSWORD is required/],
    [{ DATABASE: 'secretid', BACKUP_DIR: backupDir, KEEP_DUMPS: '0' }, 2, /KEEP_DUMPS/],
    [{ DATABASE: 'secretid', BACKUP_DIR: join(backupDir, 'gone') }, 1, /does not exist/],
  ];
  for (const [env, status, message] of cases) {
    const result = runBackupScript('backup-dump.sh', [], { ...connection(), ...env });
    t.is(result.status, status, result.output);
    t.regex(result.stderr, message);
  }
  const noTarget = runBackupScript('restore-dump.sh', ['/nonexistent.dump'], connection());
  t.is(noTarget.status, 2);
  t.regex(noTarget.stderr, /no target database/);
  const noFile = restore(join(backupDir, 'nothing.dump'), 'secretid');
  t.is(noFile.status, 1);
  t.regex(noFile.stderr, /does not exist/);
});
