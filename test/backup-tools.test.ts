/**
 * The backup scripts find pg_verifybackup where PostgreSQL keeps it, and say so when it is
 * missing instead of calling the backup damaged: on PATH (the official image), else in the
 * server binaries' folder of Debian's packages (not on Debian's PATH), else a configuration
 * error (exit 2) that names the program and the fix.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { backupScript, runBackupScript } from './helpers/backup.ts';
import { postgresBin } from './helpers/postgres.ts';

/** A PATH folder holding only these programs (from /usr/bin). */
const onlyTools = (programs: string[]) => {
  const folder = mkdtempSync(join(tmpdir(), 'secretid-tools-'));
  for (const program of programs) symlinkSync(join('/usr/bin', program), join(folder, program));
  return folder;
};
const folders: string[] = [];
test.after.always(() => {
  for (const folder of folders) rmSync(folder, { recursive: true, force: true });
});

const find = (path: string) =>
  spawnSync(
    '/usr/bin/bash',
    ['-c', `source ${backupScript('system-identifier.sh')}; postgres_tool pg_verifybackup`],
    { encoding: 'utf8', env: { PATH: path } },
  ).stdout.trim();

test("pg_verifybackup is found on PATH, else in Debian's server folder, else not at all", (t) => {
  t.is(find(`${postgresBin}:/usr/bin`), join(postgresBin, 'pg_verifybackup'));
  // Debian's PATH: pg_basebackup (the client wrapper) is there, pg_verifybackup is not.
  t.is(
    spawnSync('/usr/bin/bash', ['-c', 'command -v pg_verifybackup'], { env: { PATH: '/usr/bin' } })
      .status,
    1,
  );
  t.is(find('/usr/bin'), join(postgresBin, 'pg_verifybackup'));
  const bare = onlyTools(['bash', 'sed']);
  folders.push(bare);
  t.is(find(bare), '');
});

test('without pg_verifybackup, restore-pitr.sh and base-backup.sh stop with a configuration error naming it', (t) => {
  const bare = onlyTools(['bash', 'sed', 'dirname']);
  folders.push(bare);
  const restore = runBackupScript('restore-pitr.sh', [], {
    PATH: bare,
    PGDATA: '/nonexistent/data',
    WAL_ARCHIVE_DIR: '/nonexistent/wal',
    TARGET_TIME: 'latest',
    BASE_BACKUP: '/nonexistent/base',
  });
  t.is(restore.status, 2, restore.output);
  t.regex(restore.stderr, /pg_verifybackup is not on PATH nor in \/usr\/lib\/postgresql/);
  t.notRegex(restore.output, /damaged/);
  const base = runBackupScript('base-backup.sh', [], {
    PATH: bare,
    PGHOST: '127.0.0.1',
    PGUSER: 'postgres',
    PGPASSWORD: 'unused',
    BACKUP_DIR: tmpdir(),
    WAL_ARCHIVE_DIR: tmpdir(),
  });
  t.is(base.status, 2, base.output);
  t.regex(base.stderr, /pg_verifybackup is not on PATH .*or set VERIFY_BASE_BACKUP=false/);
});
