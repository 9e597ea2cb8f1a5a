import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './free-port.ts';

/** Where Debian keeps the PostgreSQL server binaries; PG_BIN overrides. */
export const postgresBin = process.env.PG_BIN ?? '/usr/lib/postgresql/15/bin';

/** A throwaway PostgreSQL cluster on loopback. */
export interface TestPostgres {
  port: number;
  dataDirectory: string;
  /** Socket directory (also the cluster's root folder). */
  socketDirectory: string;
  /** URL for a database and role (default: postgres as the superuser, with its password). */
  url(database?: string, user?: string, password?: string): string;
  /** Runs SQL as the superuser through psql and returns its stdout. */
  psql(sqlText: string, database?: string): string;
  stop(): void;
  start(): void;
  /** Stops the server and removes every file of the cluster. */
  destroy(): void;
}

const isRoot = process.getuid?.() === 0;
const ownerIds = () => ({
  uid: Number(execFileSync('id', ['-u', 'postgres']).toString()),
  gid: Number(execFileSync('id', ['-g', 'postgres']).toString()),
});
const runAsOwner = (command: string, args: string[]) => {
  const [file, argv] = isRoot
    ? ['runuser', ['-u', 'postgres', '--', command, ...args]]
    : [command, args];
  const result = spawnSync(file, argv, { encoding: 'utf8' });
  if (result.status !== 0) {
    throw new Error(`${command} failed (${result.status}): ${result.stderr || result.stdout}`);
  }
  return result.stdout;
};

/** How to start a test cluster. */
export interface PostgresOptions {
  /** Extra `-c name=value` settings. */
  settings?: Record<string, string>;
  /** Password of the superuser `postgres`; without one, loopback connections are trusted. */
  superuserPassword?: string;
  /** Extra initdb arguments (for example the chart's POSTGRES_INITDB_ARGS). */
  initdbArgs?: string[];
  /** Contents of a postgresql.conf and pg_hba.conf to run with instead of initdb's. */
  configFile?: string;
  hbaFile?: string;
}

/**
 * Starts a new cluster (initdb, free port, loopback only) and returns a handle.
 * The caller must `destroy()` it; tests do so in `after.always`.
 */
export const startPostgres = async (options: PostgresOptions = {}): Promise<TestPostgres> => {
  const initdb = join(postgresBin, 'initdb');
  if (!existsSync(initdb)) {
    throw new Error(
      `PostgreSQL server binaries not found at ${postgresBin}: install postgresql-15 or set PG_BIN`,
    );
  }
  const root = mkdtempSync(join(tmpdir(), 'secretid-pg-'));
  chmodSync(root, 0o755);
  if (isRoot) chownSync(root, ownerIds().uid, ownerIds().gid);
  const ownedFile = (name: string, text: string) => {
    const path = join(root, name);
    writeFileSync(path, text, { mode: 0o600 });
    if (isRoot) chownSync(path, ownerIds().uid, ownerIds().gid);
    return path;
  };
  const dataDirectory = join(root, 'data');
  const port = await freePort();
  const authentication = options.superuserPassword
    ? ['--pwfile', ownedFile('superuser-password', `${options.superuserPassword}\n`)]
    : ['--auth=trust'];
  runAsOwner(initdb, [
    '-D',
    dataDirectory,
    '-U',
    'postgres',
    '-E',
    'UTF8',
    '--no-sync',
    ...authentication,
    ...(options.initdbArgs ?? []),
  ]);
  const serverOptions = [
    ...(options.configFile
      ? [`-c config_file=${ownedFile('postgresql.conf', options.configFile)}`]
      : []),
    ...(options.hbaFile ? [`-c hba_file=${ownedFile('pg_hba.conf', options.hbaFile)}`] : []),
    `-p ${port}`,
    `-k ${root}`,
    '-c listen_addresses=127.0.0.1',
    '-c fsync=off',
    ...Object.entries(options.settings ?? {}).map(([key, value]) => `-c ${key}=${value}`),
  ].join(' ');
  const pgCtl = join(postgresBin, 'pg_ctl');
  const start = () =>
    void runAsOwner(pgCtl, [
      '-D',
      dataDirectory,
      '-o',
      serverOptions,
      '-l',
      join(root, 'server.log'),
      '-w',
      'start',
    ]);
  const stop = () => void runAsOwner(pgCtl, ['-D', dataDirectory, '-m', 'fast', '-w', 'stop']);
  start();
  const url = (
    database = 'postgres',
    user = 'postgres',
    password = user === 'postgres' ? options.superuserPassword : undefined,
  ) =>
    `postgres://${encodeURIComponent(user)}${password ? `:${encodeURIComponent(password)}` : ''}@127.0.0.1:${port}/${database}`;
  return {
    port,
    dataDirectory,
    socketDirectory: root,
    url,
    psql: (sqlText, database = 'postgres') =>
      execFileSync(
        'psql',
        ['-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', url(database), '-c', sqlText],
        {
          encoding: 'utf8',
        },
      ),
    stop,
    start,
    destroy: () => {
      try {
        stop();
      } catch {
        // already stopped
      }
      rmSync(root, { recursive: true, force: true });
    },
  };
};
