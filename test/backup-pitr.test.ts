/**
 * The chart's physical backup scripts (chart/files/backup/archive-wal.sh, base-backup.sh,
 * restore-pitr.sh) run for real: PostgreSQL 15 servers archive their WAL through
 * archive-wal.sh, base backups are taken as the server's OS user (uid 999 in the chart), and
 * point-in-time recoveries are started with pg_ctl on the restored data directory and checked
 * row by row, including a recovery from the oldest base backup retention keeps.
 */
import { execFileSync } from 'node:child_process';
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import {
  archiveCommand,
  type DataDirectoryServer,
  giveToServerUser,
  mustSucceed,
  passwordHba,
  psqlUrl,
  runBackupScript,
  serverOwnedDirectory,
  startBackupScript,
  startDataDirectory,
  tableChecksums,
  waitFor,
} from './helpers/backup.ts';
import { createNamesDatabase } from './helpers/names-database.ts';
import { startPostgres, type TestPostgres } from './helpers/postgres.ts';

const password = 'pitr-test-superuser-password';
const cleanups: Array<() => void> = [];
test.after.always(() => {
  for (const cleanup of cleanups.reverse()) {
    try {
      cleanup();
    } catch {
      // keep cleaning up
    }
  }
});
const directory = (prefix: string) => {
  const path = serverOwnedDirectory(prefix);
  cleanups.push(() => rmSync(path, { recursive: true, force: true }));
  return path;
};

/**
 * A server that archives every finished WAL segment with archive-wal.sh (into new folders, or
 * into given ones, as a cluster re-initialised on the same backup volume would).
 */
const startArchivingServer = async (folders: { archive?: string; backupDir?: string } = {}) => {
  const archive = folders.archive ?? directory('secretid-wal-');
  const backupDir = folders.backupDir ?? directory('secretid-backup-');
  const server = await startPostgres({
    superuserPassword: password,
    hbaFile: passwordHba,
    settings: { wal_level: 'replica', archive_mode: 'on', archive_timeout: '1s' },
  });
  cleanups.push(() => server.destroy());
  // archive_command may change with a reload (archive_mode needs the restart above). Being in
  // postgresql.auto.conf, it is part of every base backup, so restored servers archive too.
  server.psql(`ALTER SYSTEM SET archive_command = '${archiveCommand(archive)}'`);
  server.psql('SELECT pg_reload_conf()');
  return { server, archive, backupDir };
};

const serverTime = (server: TestPostgres) => server.psql('SELECT clock_timestamp()').trim();

/** Switches to a new WAL segment and waits until the finished one is in the archive. */
const switchAndWaitForArchive = async (server: TestPostgres, archive: string) => {
  const segment = server.psql('SELECT pg_walfile_name(pg_switch_wal())').trim();
  await waitFor(`${segment} in the archive`, () => existsSync(join(archive, segment)));
  return segment;
};

const runBaseBackup = (server: { port: number }, backupDir: string, archive: string, keep = '2') =>
  runBackupScript(
    'base-backup.sh',
    [],
    {
      PGHOST: '127.0.0.1',
      PGPORT: String(server.port),
      PGUSER: 'postgres',
      PGPASSWORD: password,
      BACKUP_DIR: backupDir,
      WAL_ARCHIVE_DIR: archive,
      KEEP_BASE_BACKUPS: keep,
    },
    { asServerUser: true },
  );
const baseBackup = (server: { port: number }, backupDir: string, archive: string, keep = '2') =>
  mustSucceed(runBaseBackup(server, backupDir, archive, keep), 'base-backup.sh');
const systemIdentifier = (server: TestPostgres) =>
  server.psql('SELECT system_identifier FROM pg_control_system()').trim();
const writtenBackup = (output: string) => {
  const match = /wrote (\S+\/base\/\d{8}T\d{6}Z):/.exec(output);
  if (!match?.[1]) throw new Error(`no base backup in the output:\n${output}`);
  return match[1];
};
const restorePitr = (env: Record<string, string>) =>
  runBackupScript('restore-pitr.sh', [], env, { asServerUser: true });

/** Starts a server on a restored data directory and waits until it has been promoted. */
const startRestored = async (dataDirectory: string, settings: Record<string, string>) => {
  const restored = await startDataDirectory(dataDirectory, { password, settings });
  cleanups.push(() => restored.stop());
  await waitFor(
    'promotion',
    () => psqlUrl(restored.url(), 'SELECT pg_is_in_recovery()') === 'f',
    30_000,
  ).catch((error) => {
    throw new Error(`${error}\n${restored.log()}`);
  });
  return restored;
};
const timeline = (restored: DataDirectoryServer) =>
  Number(psqlUrl(restored.url(), 'SELECT timeline_id FROM pg_control_checkpoint()'));
/** WAL segment files (no history, backup or partial files) in the archive, sorted. */
const segments = (archive: string) =>
  readdirSync(archive)
    .filter((name) => /^[0-9A-F]{24}$/.test(name))
    .sort();
/** A segment's position, ignoring its timeline (16 MB segments: 256 per "log" number). */
const position = (segment: string) =>
  Number.parseInt(segment.slice(8, 16), 16) * 256 + Number.parseInt(segment.slice(16), 16);

/**
 * A stand-in WAL segment: 64 KiB of a pattern, with the system identifier where PostgreSQL's
 * long page header keeps it (8 bytes at offset 24, little-endian on this machine).
 */
const fakeSegment = (system: bigint, salt = 0) => {
  const content = Buffer.from(Array.from({ length: 65536 }, (_, i) => (i * 31 + salt) % 251));
  content.writeBigUInt64LE(system, 24);
  return content;
};

test('archive-wal.sh archives atomically and never overwrites a different segment', (t) => {
  const wal = directory('secretid-pg-wal-');
  const archive = directory('secretid-wal-');
  const segment = join(wal, '000000010000000000000007');
  const content = fakeSegment(7_301_234_567_890_123_456n);
  writeFileSync(segment, content);
  const archiveWal = (args: string[], env: Record<string, string> = { WAL_ARCHIVE_DIR: archive }) =>
    runBackupScript('archive-wal.sh', args, env, { asServerUser: true });
  const archived = join(archive, '000000010000000000000007');

  const first = archiveWal([segment, '000000010000000000000007']);
  t.is(first.status, 0, first.output);
  t.deepEqual(readFileSync(archived), content);
  t.deepEqual(
    readdirSync(archive).sort(),
    ['000000010000000000000007', 'SYSTEM_IDENTIFIER'],
    'no temporary file left',
  );
  t.is(readFileSync(join(archive, 'SYSTEM_IDENTIFIER'), 'utf8'), '7301234567890123456\n');

  // PostgreSQL retries a segment whose success it did not record: same content is success.
  // It is flushed again first: an earlier attempt may have died between rename and flush.
  const again = archiveWal([segment, '000000010000000000000007']);
  t.is(again.status, 0, again.output);
  t.regex(again.stderr, /already archived with identical content .*flushed it to disk again/);

  // A copy killed before its rename leaves a temporary file: one older than an hour is removed
  // by the next run, a fresh one (a copy maybe still running) is not.
  const stale = join(archive, '.000000010000000000000005.4242.tmp');
  const fresh = join(archive, '.000000010000000000000006.4343.tmp');
  writeFileSync(stale, 'half a segment');
  writeFileSync(fresh, 'half a segment');
  const twoHoursAgo = new Date(Date.now() - 2 * 3600_000);
  utimesSync(stale, twoHoursAgo, twoHoursAgo);
  const pruning = archiveWal([segment, '000000010000000000000007']);
  t.is(pruning.status, 0, pruning.output);
  t.regex(pruning.stderr, /removed 1 leftover temporary file/);
  t.false(existsSync(stale));
  t.true(existsSync(fresh));
  rmSync(fresh);

  // A different segment under the same name is refused and the archived one is kept.
  writeFileSync(segment, fakeSegment(7_301_234_567_890_123_456n, 1));
  const conflict = archiveWal([segment, '000000010000000000000007']);
  t.is(conflict.status, 1, conflict.output);
  t.regex(conflict.stderr, /already exists with DIFFERENT content/);
  t.regex(conflict.stderr, /refusing to overwrite/);
  t.deepEqual(readFileSync(archived), content);

  // The archive directory as third argument instead of the environment.
  const history = join(wal, '00000002.history');
  writeFileSync(history, '1\t0/3000000\tbefore 2024-01-01\n');
  const byArgument = archiveWal([history, '00000002.history', archive], {});
  t.is(byArgument.status, 0, byArgument.output);
  t.true(existsSync(join(archive, '00000002.history')));

  // A segment of another database system (a re-initialised data directory) is refused, even
  // under a name the archive does not have yet, and nothing is written.
  const foreignSegment = join(wal, '000000010000000000000009');
  writeFileSync(foreignSegment, fakeSegment(7_309_999_999_999_999_999n));
  const otherSystem = archiveWal([foreignSegment, '000000010000000000000009']);
  t.is(otherSystem.status, 1, otherSystem.output);
  t.regex(
    otherSystem.stderr,
    /holds WAL of database system 7301234567890123456, but 000000010000000000000009 comes from database system 7309999999999999999/,
  );
  t.false(existsSync(join(archive, '000000010000000000000009')));
  // An archive written before SYSTEM_IDENTIFIER existed: its newest segment tells the system.
  const legacy = directory('secretid-wal-');
  writeFileSync(join(legacy, '000000010000000000000007'), content);
  const intoLegacy = archiveWal([foreignSegment, '000000010000000000000009'], {
    WAL_ARCHIVE_DIR: legacy,
  });
  t.is(intoLegacy.status, 1, intoLegacy.output);
  t.regex(intoLegacy.stderr, /holds WAL of database system 7301234567890123456/);
  t.deepEqual(readdirSync(legacy), ['000000010000000000000007']);
  const tooShort = join(wal, '00000001000000000000000A');
  writeFileSync(tooShort, 'not a segment');
  const notSegment = archiveWal([tooShort, '00000001000000000000000A']);
  t.is(notSegment.status, 1, notSegment.output);
  t.regex(notSegment.stderr, /has no WAL page header/);

  const missing = archiveWal([segment, '000000010000000000000008'], {
    WAL_ARCHIVE_DIR: join(archive, 'not-mounted'),
  });
  t.is(missing.status, 1);
  t.regex(missing.stderr, /archive directory .*not-mounted does not exist/);

  // Unwritable for the server's user (uid 999 in the chart): root's directory.
  const foreign = mkdtempSync(join(tmpdir(), 'secretid-root-wal-'));
  cleanups.push(() => rmSync(foreign, { recursive: true, force: true }));
  const unwritable = archiveWal([segment, '000000010000000000000008'], {
    WAL_ARCHIVE_DIR: foreign,
  });
  if (process.getuid?.() === 0) {
    t.is(unwritable.status, 1, unwritable.output);
    t.regex(unwritable.stderr, /is not writable/);
  }

  const noArchive = archiveWal([segment, '000000010000000000000008'], {});
  t.is(noArchive.status, 2);
  t.regex(noArchive.stderr, /WAL_ARCHIVE_DIR is required/);
  const noSource = archiveWal([join(wal, 'gone'), '000000010000000000000009']);
  t.is(noSource.status, 1);
  t.regex(noSource.stderr, /is not a file/);
});

test('point-in-time drill: recover to a moment between two commits on a new timeline', async (t) => {
  const { server, archive, backupDir } = await startArchivingServer();
  await createNamesDatabase(server, 'secretid');
  server.psql(
    `CREATE TABLE drill (id int PRIMARY KEY, phase text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp());
     INSERT INTO drill (id, phase) SELECT g, 'before the base backup' FROM generate_series(1, 100) g`,
    'secretid',
  );
  const beforeBackup = serverTime(server);

  const backup = baseBackup(server, backupDir, archive);
  const backupPath = writtenBackup(backup.stdout);
  t.regex(backup.stdout, /verified: every file of base\.tar\.gz matches/);
  const files = readdirSync(backupPath).sort();
  t.regex(files[0] ?? '', /^[0-9A-F]{24}\.[0-9A-F]{8}\.backup$/, 'the backup history file');
  t.deepEqual(files.slice(1), ['START_WAL', 'backup_info', 'backup_manifest', 'base.tar.gz']);
  const startWal = readFileSync(join(backupPath, 'START_WAL'), 'utf8').trim();
  t.regex(startWal, /^[0-9A-F]{24}$/);
  t.true(existsSync(join(archive, startWal)), 'the first segment the backup needs is archived');
  t.regex(
    readFileSync(join(backupPath, 'backup_manifest'), 'utf8'),
    /"Checksum-Algorithm": "SHA256"/,
  );

  server.psql(
    "INSERT INTO drill (id, phase) SELECT g, 'kept' FROM generate_series(101, 200) g",
    'secretid',
  );
  await switchAndWaitForArchive(server, archive);
  const target = serverTime(server);
  const expected = tableChecksums(server.url('secretid'));
  await new Promise((resolve) => setTimeout(resolve, 1100));
  server.psql(
    "INSERT INTO drill (id, phase) SELECT g, 'after the target' FROM generate_series(201, 300) g",
    'secretid',
  );
  await switchAndWaitForArchive(server, archive);
  server.stop();

  const dataDirectory = directory('secretid-restored-');
  const restoreEnv = {
    PGDATA: dataDirectory,
    WAL_ARCHIVE_DIR: archive,
    BASE_BACKUP: backupPath,
    TARGET_TIME: target,
  };
  // Refusals first: each leaves the data directory empty.
  const tooEarly = restorePitr({ ...restoreEnv, TARGET_TIME: beforeBackup });
  t.is(tooEarly.status, 1, tooEarly.output);
  t.regex(tooEarly.stderr, /is before the end of base backup/);
  const unreadable = restorePitr({ ...restoreEnv, TARGET_TIME: 'tuesday after lunch' });
  t.is(unreadable.status, 2, unreadable.output);
  t.regex(unreadable.stderr, /TARGET_TIME 'tuesday after lunch' is not a timestamp/);
  t.deepEqual(readdirSync(dataDirectory), []);
  const occupied = directory('secretid-occupied-');
  writeFileSync(join(occupied, 'PG_VERSION'), '15\n');
  const notEmpty = restorePitr({ ...restoreEnv, PGDATA: occupied });
  t.is(notEmpty.status, 1, notEmpty.output);
  t.regex(notEmpty.stderr, /is not empty: refusing to restore over existing files/);
  t.deepEqual(readdirSync(occupied), ['PG_VERSION']);

  const prepared = mustSucceed(restorePitr(restoreEnv), 'restore-pitr.sh');
  t.regex(prepared.stdout, /verified every file against backup_manifest/);
  t.regex(prepared.stdout, /next steps/);
  t.true(existsSync(join(dataDirectory, 'recovery.signal')));
  const autoConf = readFileSync(join(dataDirectory, 'postgresql.auto.conf'), 'utf8');
  t.true(autoConf.includes(`restore_command = 'cp "${archive}/%f" "%p"'`), autoConf);
  t.regex(autoConf, /recovery_target_time = '\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}\+00'/);
  t.regex(autoConf, /recovery_target_action = 'promote'/);

  // Archiving stays on, as in the chart: the new timeline goes to the same archive.
  const restored = await startRestored(dataDirectory, {
    wal_level: 'replica',
    archive_mode: 'on',
  });
  t.deepEqual(tableChecksums(restored.url('secretid')), expected);
  t.is(
    psqlUrl(
      restored.url('secretid'),
      "SELECT count(*) || ' ' || max(id) || ' ' || string_agg(DISTINCT phase, ',') FROM drill",
    ),
    '200 200 before the base backup,kept',
  );
  t.true(timeline(restored) > 1, `timeline ${timeline(restored)}`);
  t.regex(restored.log(), /recovery stopping before commit/);
  await waitFor('the new timeline history in the archive', () =>
    existsSync(
      join(archive, `${timeline(restored).toString(16).toUpperCase().padStart(8, '0')}.history`),
    ),
  );
});

test('retention keeps two base backups, prunes older WAL, and the oldest kept still recovers', async (t) => {
  const { server, archive, backupDir } = await startArchivingServer();
  const insertBatch = (batch: number) =>
    server.psql(
      `INSERT INTO rows_by_batch SELECT g, ${batch} FROM generate_series(${batch * 1000 + 1}, ${batch * 1000 + 500}) g`,
    );
  server.psql('CREATE TABLE rows_by_batch (id int PRIMARY KEY, batch int NOT NULL)');
  insertBatch(1);
  const first = writtenBackup(baseBackup(server, backupDir, archive).stdout);
  const firstStart = readFileSync(join(first, 'START_WAL'), 'utf8').trim();
  insertBatch(2);
  await switchAndWaitForArchive(server, archive);
  const second = writtenBackup(baseBackup(server, backupDir, archive).stdout);
  const secondStart = readFileSync(join(second, 'START_WAL'), 'utf8').trim();
  insertBatch(3);
  await switchAndWaitForArchive(server, archive);
  const target = serverTime(server);
  await new Promise((resolve) => setTimeout(resolve, 1100));
  insertBatch(4);
  await switchAndWaitForArchive(server, archive);
  t.true(existsSync(join(archive, firstStart)), 'two backups kept: nothing pruned yet');
  t.true(existsSync(first));

  const thirdRun = baseBackup(server, backupDir, archive);
  const third = writtenBackup(thirdRun.stdout);
  server.stop();

  t.regex(thirdRun.stdout, /retention: deleted base backup \d{8}T\d{6}Z/);
  t.regex(thirdRun.stdout, /WAL retention: removed [1-9]\d* segments older than/);
  t.false(existsSync(first), 'the oldest base backup is gone');
  t.deepEqual(
    readdirSync(join(backupDir, 'base')).sort(),
    [second, third].map((path) => path.split('/').pop()),
  );
  const left = segments(archive);
  t.false(left.includes(firstStart), 'WAL only the deleted backup needed is pruned');
  t.true(
    left.every((segment) => position(segment) >= position(secondStart)),
    `${left}`,
  );
  t.is(left[0], secondStart, 'the oldest kept backup still finds its first segment');
  // Contiguous from there on: every segment the oldest kept backup replays is present.
  left.forEach((segment, i) => {
    t.is(position(segment), position(secondStart) + i, `gap before ${segment}`);
  });
  t.false(
    readdirSync(archive).some((name) => name.startsWith(firstStart) && name.endsWith('.backup')),
    'the deleted backup history file is pruned too',
  );

  // BACKUP_DIR instead of BASE_BACKUP: the script picks the newest backup that ended before the
  // target, which is the oldest kept one here.
  const toTarget = directory('secretid-restored-');
  const prepared = mustSucceed(
    restorePitr({
      PGDATA: toTarget,
      WAL_ARCHIVE_DIR: archive,
      BACKUP_DIR: backupDir,
      TARGET_TIME: target,
    }),
    'restore-pitr.sh to the target',
  );
  t.true(prepared.stdout.includes(`picked base backup ${second}`), prepared.stdout);
  // Archiving off: this timeline must not become the one a restore to 'latest' follows.
  const atTarget = await startRestored(toTarget, { archive_mode: 'off' });
  t.is(
    psqlUrl(
      atTarget.url(),
      "SELECT string_agg(batch || ':' || n, ',' ORDER BY batch) FROM (SELECT batch, count(*) n FROM rows_by_batch GROUP BY batch) b",
    ),
    '1:500,2:500,3:500',
  );
  t.true(timeline(atTarget) > 1);
  atTarget.stop();

  const toLatest = directory('secretid-restored-');
  mustSucceed(
    restorePitr({
      PGDATA: toLatest,
      WAL_ARCHIVE_DIR: archive,
      BASE_BACKUP: second,
      TARGET_TIME: 'latest',
    }),
    'restore-pitr.sh to the latest WAL',
  );
  const atLatest = await startRestored(toLatest, { archive_mode: 'off' });
  t.is(
    psqlUrl(atLatest.url(), "SELECT count(*) || ' ' || max(batch) FROM rows_by_batch"),
    '2000 4',
  );
  atLatest.stop();
});

test("a restore to 'latest' replays all WAL even when the base backup carries an earlier recovery's target", async (t) => {
  const { server, archive, backupDir } = await startArchivingServer();
  server.psql('CREATE TABLE dossiers (id int PRIMARY KEY, batch int NOT NULL)');
  server.psql('INSERT INTO dossiers SELECT g, 1 FROM generate_series(1, 100) g');
  // What a server recovered earlier keeps when its ALTER SYSTEM RESET steps were skipped: a
  // primary ignores it, but every base backup of it carries it in postgresql.auto.conf.
  const leftTarget = server
    .psql("SELECT to_char(clock_timestamp() + interval '2 seconds', 'YYYY-MM-DD HH24:MI:SS.USOF')")
    .trim();
  server.psql(`ALTER SYSTEM SET recovery_target_time = '${leftTarget}'`);
  const backup = writtenBackup(baseBackup(server, backupDir, archive).stdout);
  await new Promise((resolve) => setTimeout(resolve, 3000));
  // Written after that old target: a restore to 'latest' must bring it back.
  server.psql('INSERT INTO dossiers SELECT g, 2 FROM generate_series(101, 200) g');
  await switchAndWaitForArchive(server, archive);
  server.stop();

  const restored = directory('secretid-restored-');
  const prepared = mustSucceed(
    restorePitr({
      PGDATA: restored,
      WAL_ARCHIVE_DIR: archive,
      BASE_BACKUP: backup,
      TARGET_TIME: 'latest',
    }),
    'restore-pitr.sh to the latest WAL',
  );
  t.regex(prepared.stdout, /removed 1 recovery setting\(s\) the base backup carried/);
  const settings = readFileSync(join(restored, 'postgresql.auto.conf'), 'utf8');
  t.false(settings.includes(leftTarget), settings);
  const atLatest = await startRestored(restored, { archive_mode: 'off' });
  t.is(psqlUrl(atLatest.url(), "SELECT count(*) || ' ' || max(batch) FROM dossiers"), '200 2');
  atLatest.stop();
});

test('after a point-in-time recovery, a base backup the recovery abandoned neither counts in retention nor gets picked', async (t) => {
  const { server, archive, backupDir } = await startArchivingServer();
  server.psql('CREATE TABLE rows_by_batch (id int PRIMARY KEY, batch int NOT NULL)');
  const insertBatch = (url: string, batch: number) =>
    psqlUrl(
      url,
      `INSERT INTO rows_by_batch SELECT g, ${batch} FROM generate_series(${batch * 1000 + 1}, ${batch * 1000 + 100}) g`,
    );
  const batches = (url: string) =>
    psqlUrl(
      url,
      "SELECT string_agg(batch || ':' || n, ',' ORDER BY batch) FROM (SELECT batch, count(*) n FROM rows_by_batch GROUP BY batch) b",
    );
  const name = (path: string) => path.split('/').pop() as string;
  // Timeline 1: backup A, batch 2, the target, batch 3, then backup B after the target.
  insertBatch(server.url(), 1);
  const a = writtenBackup(baseBackup(server, backupDir, archive).stdout);
  insertBatch(server.url(), 2);
  await switchAndWaitForArchive(server, archive);
  const target = serverTime(server);
  await new Promise((resolve) => setTimeout(resolve, 1100));
  insertBatch(server.url(), 3);
  await switchAndWaitForArchive(server, archive);
  const b = writtenBackup(baseBackup(server, backupDir, archive).stdout);
  server.stop();

  // The recovery: A rolled forward to the target, promoted on timeline 2, archiving on.
  const recoveredDirectory = directory('secretid-restored-');
  const recovery = mustSucceed(
    restorePitr({
      PGDATA: recoveredDirectory,
      WAL_ARCHIVE_DIR: archive,
      BACKUP_DIR: backupDir,
      TARGET_TIME: target,
    }),
    'restore-pitr.sh to the target',
  );
  t.true(recovery.stdout.includes(`picked base backup ${a}`), recovery.stdout);
  const recovered = await startRestored(recoveredDirectory, {
    wal_level: 'replica',
    archive_mode: 'on',
  });
  t.is(timeline(recovered), 2);
  await waitFor('00000002.history in the archive', () =>
    existsSync(join(archive, '00000002.history')),
  );
  t.is(batches(recovered.url()), '1:100,2:100');
  insertBatch(recovered.url(), 5);
  const recoveredServer = {
    psql: (sqlText: string) => psqlUrl(recovered.url(), sqlText),
  } as TestPostgres;
  await switchAndWaitForArchive(recoveredServer, archive);
  const onTimeline2 = psqlUrl(recovered.url(), 'SELECT clock_timestamp()');
  await new Promise((resolve) => setTimeout(resolve, 1100));
  // A commit after that moment, archived: recovery stops at the first commit past its target.
  insertBatch(recovered.url(), 6);
  await switchAndWaitForArchive(recoveredServer, archive);

  // The first base backup of timeline 2, keeping 2: B (timeline 1, past the switch) does not
  // count, so A stays; counted, B would have pushed A out.
  const c = baseBackup(recovered, backupDir, archive);
  const cPath = writtenBackup(c.stdout);
  recovered.stop();
  t.regex(
    c.stdout,
    new RegExp(
      `base backup ${name(b)} does not count towards 2: it cannot be restored onto timeline 2 \\(it ended at [0-9A-F]+/[0-9A-F]+ on timeline 1, after timeline 2 left that timeline at [0-9A-F]+/[0-9A-F]+`,
    ),
  );
  t.notRegex(c.stdout, /retention: deleted/);
  t.regex(c.stdout, /retention: kept 3 base backups, 2 of them restorable onto timeline 2/);
  t.deepEqual(readdirSync(join(backupDir, 'base')).sort(), [a, b, cPath].map(name).sort());

  // Restores follow timeline 2: to a moment on it before C, B is skipped and A picked (B ended
  // earlier but PostgreSQL cannot follow timeline 2 from it); B named is refused.
  const toTimeline2 = directory('secretid-restored-');
  const picked = mustSucceed(
    restorePitr({
      PGDATA: toTimeline2,
      WAL_ARCHIVE_DIR: archive,
      BACKUP_DIR: backupDir,
      TARGET_TIME: onTimeline2,
    }),
    'restore-pitr.sh to a moment on timeline 2',
  );
  t.regex(
    picked.stdout,
    new RegExp(`skipping base backup ${name(b)}: recovery follows timeline 2`),
  );
  t.true(picked.stdout.includes(`picked base backup ${a}`), picked.stdout);
  const atTimeline2 = await startRestored(toTimeline2, { archive_mode: 'off' });
  t.is(batches(atTimeline2.url()), '1:100,2:100,5:100');
  atTimeline2.stop();
  const named = directory('secretid-restored-');
  const refused = restorePitr({
    PGDATA: named,
    WAL_ARCHIVE_DIR: archive,
    BASE_BACKUP: b,
    TARGET_TIME: 'latest',
  });
  t.is(refused.status, 1, refused.output);
  t.regex(
    refused.stderr,
    /cannot be restored onto timeline 2, the newest in .*PostgreSQL would not start from it/,
  );
  t.deepEqual(readdirSync(named), []);
  // What the refusal spares: B unpacked by hand and set to follow the newest timeline, as
  // the old pick would have prepared it; PostgreSQL will not start from it.
  execFileSync('tar', ['-xzf', join(b, 'base.tar.gz'), '-C', named]);
  writeFileSync(
    join(named, 'postgresql.auto.conf'),
    `restore_command = 'cp "${archive}/%f" "%p"'\nrecovery_target_timeline = 'latest'\n`,
    { flag: 'a' },
  );
  writeFileSync(join(named, 'recovery.signal'), '');
  giveToServerUser(named);
  const failedStart = await startDataDirectory(named, {
    password,
    settings: { archive_mode: 'off' },
    startTimeoutSeconds: 30,
  }).then(
    (started) => {
      started.stop();
      return 'started';
    },
    (error: Error) => error.message,
  );
  // PostgreSQL 15 reads B's checkpoint position on timeline 2, where other WAL lies.
  t.regex(
    failedStart,
    /FATAL: +(could not locate required checkpoint record|requested timeline 2 is not a child of this server's history)/,
  );

  // Two more runs of timeline 2 (keeping 2): A and then B rotate out, never C's successors.
  const restarted = await startDataDirectory(recoveredDirectory, {
    password,
    settings: { wal_level: 'replica', archive_mode: 'on' },
  });
  cleanups.push(() => restarted.stop());
  const d = baseBackup(restarted, backupDir, archive);
  t.regex(d.stdout, new RegExp(`retention: deleted base backup ${name(a)}`));
  t.regex(d.stdout, new RegExp(`retention: deleted base backup ${name(b)}`));
  restarted.stop();
  t.deepEqual(readdirSync(join(backupDir, 'base')).sort(), [
    name(cPath),
    name(writtenBackup(d.stdout)),
  ]);
});

test('a re-initialised data directory never rotates out the base backups of the real cluster', async (t) => {
  // The real cluster: two base backups and its WAL in the archive.
  const real = await startArchivingServer();
  const { archive, backupDir } = real;
  real.server.psql('CREATE TABLE agents (id int PRIMARY KEY)');
  real.server.psql('INSERT INTO agents SELECT generate_series(1, 50)');
  const realSystem = systemIdentifier(real.server);
  const first = writtenBackup(baseBackup(real.server, backupDir, archive).stdout);
  await switchAndWaitForArchive(real.server, archive);
  const second = writtenBackup(baseBackup(real.server, backupDir, archive).stdout);
  t.true(
    readFileSync(join(second, 'backup_info'), 'utf8').includes(`SYSTEM_IDENTIFIER=${realSystem}\n`),
  );
  t.is(readFileSync(join(archive, 'SYSTEM_IDENTIFIER'), 'utf8').trim(), realSystem);
  await switchAndWaitForArchive(real.server, archive);
  real.server.stop();
  const archivedBefore = segments(archive);

  // The volume's data directory initialised anew (initdb on an empty directory), archiving to
  // and backing up into the same folders, as the chart's pod would after losing its data.
  const fresh = await startArchivingServer({ archive, backupDir });
  const freshSystem = systemIdentifier(fresh.server);
  t.not(freshSystem, realSystem);
  fresh.server.psql('SELECT pg_switch_wal()');
  await waitFor(
    'a refused archiving attempt',
    () => Number(fresh.server.psql('SELECT failed_count FROM pg_stat_archiver').trim()) > 0,
  );
  t.deepEqual(
    segments(archive),
    archivedBefore,
    'no segment of the new system reached the archive',
  );

  // Two scheduled runs (the drill that used to delete both real backups): each refuses.
  for (const run of [1, 2]) {
    const refused = runBaseBackup(fresh.server, backupDir, archive, '1');
    t.is(refused.status, 1, `run ${run}: ${refused.output}`);
    t.regex(
      refused.stderr,
      new RegExp(
        `belongs to database system ${realSystem}, but the server .* is database system ${freshSystem}`,
      ),
    );
    t.regex(refused.stderr, /nothing was deleted/);
  }
  t.true(existsSync(first) && existsSync(second), 'both base backups of the real cluster are kept');
  t.deepEqual(segments(archive), archivedBefore, 'no WAL was pruned');

  // Only the archive moved aside: the real cluster's base backups still stop every run, also a
  // backup written before backup_info recorded the identifier (read from its pg_control).
  writeFileSync(
    join(second, 'backup_info'),
    readFileSync(join(second, 'backup_info'), 'utf8').replace(/^SYSTEM_IDENTIFIER=.*\n/m, ''),
  );
  const freshArchive = directory('secretid-wal-');
  fresh.server.psql(`ALTER SYSTEM SET archive_command = '${archiveCommand(freshArchive)}'`);
  fresh.server.psql('SELECT pg_reload_conf()');
  await switchAndWaitForArchive(fresh.server, freshArchive);
  const mixed = runBaseBackup(fresh.server, backupDir, freshArchive, '1');
  t.is(mixed.status, 1, mixed.output);
  t.regex(
    mixed.stderr,
    new RegExp(`base backup .*${second.split('/').pop()} belongs to database system ${realSystem}`),
  );
  t.true(existsSync(first) && existsSync(second));

  // Restores pick only backups of the archive's system: 'latest' from the real archive takes
  // the newest real backup; from the new system's archive it skips a newer-named real one.
  const restoredReal = directory('secretid-restored-');
  const pickedReal = mustSucceed(
    restorePitr({
      PGDATA: restoredReal,
      WAL_ARCHIVE_DIR: archive,
      BACKUP_DIR: backupDir,
      TARGET_TIME: 'latest',
    }),
    'restore-pitr.sh from the real archive',
  );
  t.true(pickedReal.stdout.includes(`picked base backup ${second}`), pickedReal.stdout);
  const freshBackupDir = directory('secretid-backup-');
  const freshBackup = writtenBackup(baseBackup(fresh.server, freshBackupDir, freshArchive).stdout);
  const realStart = readFileSync(join(second, 'START_WAL'), 'utf8').trim();
  fresh.server.stop();
  execFileSync('cp', ['-a', second, join(freshBackupDir, 'base', '29991231T235959Z')]);
  const restoredFresh = directory('secretid-restored-');
  const pickedFresh = mustSucceed(
    restorePitr({
      PGDATA: restoredFresh,
      WAL_ARCHIVE_DIR: freshArchive,
      BACKUP_DIR: freshBackupDir,
      TARGET_TIME: 'latest',
    }),
    'restore-pitr.sh from the new archive',
  );
  t.regex(
    pickedFresh.stdout,
    new RegExp(
      `skipping base backup 29991231T235959Z: it belongs to database system ${realSystem}`,
    ),
  );
  t.true(pickedFresh.stdout.includes(`picked base backup ${freshBackup}`), pickedFresh.stdout);
  // Named explicitly, a real backup with an archive of the other system is refused even where
  // that archive has a segment of the very name the backup needs (both systems count from 1):
  // a copy of the new system's archive with one of its segments under that name.
  const otherArchive = directory('secretid-wal-');
  const [freshSegment] = segments(freshArchive);
  execFileSync('cp', [
    '-a',
    join(freshArchive, freshSegment as string),
    join(otherArchive, realStart),
  ]);
  execFileSync('cp', ['-a', join(freshArchive, 'SYSTEM_IDENTIFIER'), otherArchive]);
  const wrongArchive = directory('secretid-restored-');
  const refused = restorePitr({
    PGDATA: wrongArchive,
    WAL_ARCHIVE_DIR: otherArchive,
    BASE_BACKUP: second,
    TARGET_TIME: 'latest',
  });
  t.is(refused.status, 1, refused.output);
  t.regex(
    refused.stderr,
    new RegExp(
      `is of database system ${realSystem}, but ${realStart} .* is of database system ${freshSystem}: that WAL cannot be replayed`,
    ),
  );
  t.deepEqual(readdirSync(wrongArchive), []);
});

test('TERM while pg_basebackup waits for WAL archiving stops it at once: exit 143, no partial backup', async (t) => {
  const { server, archive, backupDir } = await startArchivingServer();
  // Archiving fails from now on, so the end of the backup waits for it (as on a full or
  // unmounted archive volume) and pg_basebackup does not return.
  server.psql("ALTER SYSTEM SET archive_command = 'false'");
  server.psql('SELECT pg_reload_conf()');
  const script = startBackupScript('base-backup.sh', [], {
    PGHOST: '127.0.0.1',
    PGPORT: String(server.port),
    PGUSER: 'postgres',
    PGPASSWORD: password,
    BACKUP_DIR: backupDir,
    WAL_ARCHIVE_DIR: archive,
  });
  await waitFor(
    'pg_basebackup waiting for WAL archiving',
    () =>
      server
        .psql(
          "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg_basebackup' AND wait_event = 'BackupWaitWalArchive'",
        )
        .trim() === '1',
    60_000,
  ).catch((error) => {
    throw new Error(`${error}\n${script.output()}`);
  });
  t.true(
    readdirSync(join(backupDir, 'base')).some((name) => name.endsWith('.partial')),
    'pg_basebackup has begun its directory',
  );
  const signalled = performance.now();
  script.signal('SIGTERM');
  const outcome = await Promise.race([
    script.result,
    new Promise<'still running'>((resolve) => setTimeout(() => resolve('still running'), 30_000)),
  ]);
  if (outcome === 'still running') {
    script.signal('SIGKILL');
    t.fail(`base-backup.sh outlived the grace period:\n${script.output()}`);
    return;
  }
  t.is(outcome.status, 143, outcome.output);
  t.regex(outcome.stderr, /received SIGTERM; stopping the running step \(pid \d+\)/);
  t.regex(outcome.stderr, /no base backup was written/);
  t.deepEqual(readdirSync(join(backupDir, 'base')), [], 'no partial backup left');
  t.log(`exited ${Math.round(performance.now() - signalled)} ms after SIGTERM`);
});

test('base-backup.sh refuses a server without WAL archiving and bad configuration', async (t) => {
  const backupDir = directory('secretid-backup-');
  const archive = directory('secretid-wal-');
  const env = {
    BACKUP_DIR: backupDir,
    WAL_ARCHIVE_DIR: archive,
    PGUSER: 'postgres',
    PGPASSWORD: password,
  };
  const missing = runBackupScript('base-backup.sh', [], {
    ...env,
    PGHOST: '127.0.0.1',
    WAL_ARCHIVE_DIR: '',
  });
  t.is(missing.status, 2);
  t.regex(missing.stderr, /WAL_ARCHIVE_DIR is required/);
  const keep = runBackupScript('base-backup.sh', [], {
    ...env,
    PGHOST: '127.0.0.1',
    KEEP_BASE_BACKUPS: 'two',
  });
  t.is(keep.status, 2);
  t.regex(keep.stderr, /KEEP_BASE_BACKUPS/);

  const server = await startPostgres({ superuserPassword: password, hbaFile: passwordHba });
  cleanups.push(() => server.destroy());
  const result = runBackupScript(
    'base-backup.sh',
    [],
    { ...env, PGHOST: '127.0.0.1', PGPORT: String(server.port) },
    { asServerUser: true },
  );
  t.is(result.status, 1, result.output);
  t.regex(result.stderr, /archive_mode=off/);
  t.deepEqual(readdirSync(join(backupDir, 'base')), [], 'no partial backup left');

  const pitr = runBackupScript('restore-pitr.sh', [], {
    PGDATA: backupDir,
    WAL_ARCHIVE_DIR: archive,
  });
  t.is(pitr.status, 2);
  t.regex(pitr.stderr, /TARGET_TIME is required/);
});
