import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './free-port.ts';

/** Where Debian keeps the PostgreSQL server binaries; PG_BIN overrides. */
export const postgresBin = process.env.PG_BIN ?? '/usr/lib/postgresql/15/bin';

/** A throwaway PostgreSQL cluster on loopback. */
export interface TestPostgres {
  port: number;
  dataDirectory: string;
  /** Superuser URL for a database name (default postgres). */
  url(database?: string, user?: string, password?: string): string;
  /** Runs SQL as the superuser through psql and returns its stdout. */
  psql(sqlText: string, database?: string): string;
  stop(): void;
  start(): void;
  /** Stops the server and removes every file of the cluster. */
  destroy(): void;
}

const isRoot = process.getuid?.() === 0;
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

/**
 * Starts a new cluster (initdb, free port, trust auth on loopback only) and returns a handle.
 * The caller must `destroy()` it; tests do so in `after.always`.
 */
export const startPostgres = async (
  settings: Record<string, string> = {},
): Promise<TestPostgres> => {
  const initdb = join(postgresBin, 'initdb');
  if (!existsSync(initdb)) {
    throw new Error(
      `PostgreSQL server binaries not found at ${postgresBin}: install postgresql-15 or set PG_BIN`,
    );
  }
  const root = mkdtempSync(join(tmpdir(), 'secretid-pg-'));
  chmodSync(root, 0o755);
  if (isRoot) {
    const uid = Number(execFileSync('id', ['-u', 'postgres']).toString());
    const gid = Number(execFileSync('id', ['-g', 'postgres']).toString());
    chownSync(root, uid, gid);
  }
  const dataDirectory = join(root, 'data');
  const port = await freePort();
  runAsOwner(initdb, [
    '-D',
    dataDirectory,
    '-U',
    'postgres',
    '--auth=trust',
    '-E',
    'UTF8',
    '--no-sync',
  ]);
  const options = [
    `-p ${port}`,
    `-k ${root}`,
    '-c listen_addresses=127.0.0.1',
    '-c fsync=off',
    ...Object.entries(settings).map(([key, value]) => `-c ${key}=${value}`),
  ].join(' ');
  const pgCtl = join(postgresBin, 'pg_ctl');
  const start = () =>
    void runAsOwner(pgCtl, [
      '-D',
      dataDirectory,
      '-o',
      options,
      '-l',
      join(root, 'server.log'),
      '-w',
      'start',
    ]);
  const stop = () => void runAsOwner(pgCtl, ['-D', dataDirectory, '-m', 'fast', '-w', 'stop']);
  start();
  const url = (database = 'postgres', user = 'postgres', password?: string) =>
    `postgres://${encodeURIComponent(user)}${password ? `:${encodeURIComponent(password)}` : ''}@127.0.0.1:${port}/${database}`;
  return {
    port,
    dataDirectory,
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
