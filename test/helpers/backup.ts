import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './free-port.ts';
import { postgresBin } from './postgres.ts';

/**
 * The chart's backup scripts, byte for byte as they are in chart/files/backup, copied to a
 * world-readable folder: PostgreSQL (as its own OS user) runs archive-wal.sh, and a fresh clone
 * may sit below a directory that user cannot enter. The folder goes when the process exits.
 */
const chartScripts = join(import.meta.dirname, '..', '..', 'chart', 'files', 'backup');
export const backupScripts = mkdtempSync(join(tmpdir(), 'secretid-backup-scripts-'));
chmodSync(backupScripts, 0o755);
for (const file of readdirSync(chartScripts)) {
  copyFileSync(join(chartScripts, file), join(backupScripts, file));
  chmodSync(join(backupScripts, file), 0o755);
}
process.once('exit', () => rmSync(backupScripts, { recursive: true, force: true }));
export const backupScript = (name: string) => join(backupScripts, name);

const isRoot = process.getuid?.() === 0;
const postgresIds = () => ({
  uid: Number(execFileSync('id', ['-u', 'postgres']).toString()),
  gid: Number(execFileSync('id', ['-g', 'postgres']).toString()),
});

/** A temporary directory owned by the OS user the test servers run as (mode 0700). */
export const serverOwnedDirectory = (prefix: string) => {
  const path = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(path, 0o700);
  if (isRoot) chownSync(path, postgresIds().uid, postgresIds().gid);
  return path;
};

/** Gives a path to the server's OS user (tests run as root; the scripts run as uid 999 in the chart). */
export const giveToServerUser = (path: string) => {
  if (isRoot) execFileSync('chown', ['-R', 'postgres:postgres', path]);
};

export interface ScriptResult {
  status: number | null;
  stdout: string;
  stderr: string;
  /** stdout and stderr together, for messages. */
  output: string;
  milliseconds: number;
}

type ScriptEnvironment = Record<string, string | undefined>;
interface ScriptOptions {
  asServerUser?: boolean;
  timeoutMs?: number;
}

/** The program and arguments that run a backup script, and the environment it gets. */
const scriptCommand = (
  name: string,
  args: string[],
  env: ScriptEnvironment,
  options: ScriptOptions,
) => {
  const environment: Record<string, string> = { PATH: `${postgresBin}:${process.env.PATH}` };
  for (const [key, value] of Object.entries(env)) if (value !== undefined) environment[key] = value;
  const command = ['bash', backupScript(name), ...args];
  const [file, argv] =
    options.asServerUser && isRoot
      ? [
          'runuser',
          [
            '-u',
            'postgres',
            '--',
            'env',
            '-i',
            ...Object.entries(environment).map(([k, v]) => `${k}=${v}`),
            ...command,
          ],
        ]
      : [command[0] as string, command.slice(1)];
  return { file: file as string, argv: argv as string[], environment };
};

/**
 * Runs one of the backup scripts with bash and only the given environment (plus a PATH with
 * the PostgreSQL 15 binaries first), as the current user or, with `asServerUser`, as the
 * `postgres` OS user like the chart's containers (uid 999).
 */
export const runBackupScript = (
  name: string,
  args: string[],
  env: ScriptEnvironment,
  options: ScriptOptions = {},
): ScriptResult => {
  const { file, argv, environment } = scriptCommand(name, args, env, options);
  const started = performance.now();
  const result = spawnSync(file, argv, {
    encoding: 'utf8',
    env: environment,
    cwd: tmpdir(),
    timeout: options.timeoutMs ?? 60_000,
  });
  const milliseconds = performance.now() - started;
  return {
    status: result.status,
    stdout: result.stdout,
    stderr: result.stderr,
    output: `${result.stdout}\n${result.stderr}`,
    milliseconds,
  };
};

/**
 * Starts a backup script as the current user (bash is the process, as the container's PID 1
 * is), for a test that signals it while it runs: `signal` reaches bash alone, as the
 * kubelet's does, not its children; `result` settles when it exits (killed after
 * `timeoutMs`, default 60 s).
 */
export const startBackupScript = (
  name: string,
  args: string[],
  env: ScriptEnvironment,
  options: { timeoutMs?: number } = {},
) => {
  const { file, argv, environment } = scriptCommand(name, args, env, {});
  const child = spawn(file, argv, { env: environment, cwd: tmpdir() });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const started = performance.now();
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
  const result = new Promise<ScriptResult & { signal: NodeJS.Signals | null }>((resolve) => {
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      resolve({
        status,
        signal,
        stdout,
        stderr,
        output: `${stdout}\n${stderr}`,
        milliseconds: performance.now() - started,
      });
    });
  });
  return {
    pid: child.pid as number,
    output: () => `${stdout}\n${stderr}`,
    signal: (signal: NodeJS.Signals) => child.kill(signal),
    result,
  };
};

/** Throws with the script's output unless it exited 0. */
export const mustSucceed = (result: ScriptResult, what: string) => {
  if (result.status !== 0) throw new Error(`${what} exited ${result.status}:\n${result.output}`);
  return result;
};

/**
 * pg_hba.conf for test servers that check passwords like the chart's (SCRAM for every TCP
 * client), plus the replication line pg_basebackup needs.
 */
export const passwordHba = [
  'local all all trust',
  'host all all 127.0.0.1/32 scram-sha-256',
  'host replication all 127.0.0.1/32 scram-sha-256',
  '',
].join('\n');

/** Runs SQL through psql against a URL and returns the unaligned, tuples-only output. */
export const psqlUrl = (url: string, sqlText: string) =>
  execFileSync('psql', ['-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', url, '-c', sqlText], {
    encoding: 'utf8',
  }).trim();

/**
 * Holds an ACCESS EXCLUSIVE lock on `table` in a session of its own until `release` ends that
 * session (pg_terminate_backend): what a long migration does to pg_dump, which then waits.
 */
export const holdTableLock = async (url: string, table: string) => {
  const name = `secretid-lock-holder-${process.pid}-${Date.now()}`;
  const holder = spawn(
    'psql',
    [
      '-X',
      '-q',
      url,
      '-c',
      `BEGIN; LOCK TABLE ${table} IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(300);`,
    ],
    { env: { ...process.env, PGAPPNAME: name }, stdio: 'ignore' },
  );
  const closed = new Promise((resolve) => holder.on('close', resolve));
  await waitFor(
    'the lock holder',
    () =>
      psqlUrl(
        url,
        `SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE a.application_name = '${name}' AND l.mode = 'AccessExclusiveLock' AND l.granted`,
      ) !== '0',
  );
  return {
    release: async () => {
      psqlUrl(
        url,
        `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '${name}'`,
      );
      await closed;
    },
  };
};

/**
 * Row count and an md5 over every row's text form, for every table in schema public: equal
 * maps mean equal contents, whatever the physical order.
 */
export const tableChecksums = (url: string): Record<string, string> => {
  const tables = psqlUrl(
    url,
    "SELECT format('%I', tablename) FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
  )
    .split('\n')
    .filter(Boolean);
  if (tables.length === 0) return {};
  const query = tables
    .map(
      (table) =>
        `SELECT '${table}', count(*) || ':' || coalesce(md5(string_agg(t::text, ',' ORDER BY t::text)), '-') FROM public.${table} t`,
    )
    .join(' UNION ALL ');
  return Object.fromEntries(
    psqlUrl(url, query)
      .split('\n')
      .map((line) => line.split('|') as [string, string]),
  );
};

/** Polls until `check` returns a value other than undefined or false, or throws after `ms`. */
export const waitFor = async <T>(
  what: string,
  check: () => T | undefined | false,
  ms = 20_000,
): Promise<T> => {
  const deadline = Date.now() + ms;
  for (;;) {
    let last: unknown;
    try {
      const value = check();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}${last ? `: ${last}` : ''}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
};

/**
 * archive_command for a test server, the chart's form: archive-wal.sh with the archive
 * directory as third argument (the unit test covers WAL_ARCHIVE_DIR in the environment).
 */
export const archiveCommand = (archiveDirectory: string) =>
  `bash ${backupScript('archive-wal.sh')} %p %f ${archiveDirectory}`;

/** A PostgreSQL server started with pg_ctl on an existing (restored) data directory. */
export interface DataDirectoryServer {
  port: number;
  url(database?: string): string;
  log(): string;
  stop(): void;
}

const runAsServerUser = (command: string, args: string[]) => {
  const [file, argv] = isRoot
    ? ['runuser', ['-u', 'postgres', '--', command, ...args]]
    : [command, args];
  return spawnSync(file, argv, { encoding: 'utf8', timeout: 1_800_000 });
};

/**
 * Starts PostgreSQL on a data directory prepared by restore-pitr.sh (recovery starts by
 * itself), on a free loopback port; `pg_ctl -w` returns once it accepts connections.
 */
export const startDataDirectory = async (
  dataDirectory: string,
  options: { password: string; settings?: Record<string, string>; startTimeoutSeconds?: number },
): Promise<DataDirectoryServer> => {
  const port = await freePort();
  const socketDirectory = serverOwnedDirectory('secretid-sock-');
  chmodSync(socketDirectory, 0o755);
  const logFile = join(socketDirectory, 'server.log');
  const serverOptions = [
    `-p ${port}`,
    `-k ${socketDirectory}`,
    '-c listen_addresses=127.0.0.1',
    '-c fsync=off',
    ...Object.entries(options.settings ?? {}).map(([key, value]) => `-c ${key}=${value}`),
  ].join(' ');
  const pgCtl = join(postgresBin, 'pg_ctl');
  const log = () => {
    try {
      return execFileSync('cat', [logFile], { encoding: 'utf8' });
    } catch {
      return '';
    }
  };
  const started = runAsServerUser(pgCtl, [
    '-D',
    dataDirectory,
    '-o',
    serverOptions,
    '-l',
    logFile,
    '-w',
    '-t',
    String(options.startTimeoutSeconds ?? 120),
    'start',
  ]);
  if (started.status !== 0) {
    const text = log();
    rmSync(socketDirectory, { recursive: true, force: true });
    throw new Error(`pg_ctl start failed (${started.status}): ${started.stderr}\n${text}`);
  }
  return {
    port,
    url: (database = 'postgres') =>
      `postgres://postgres:${encodeURIComponent(options.password)}@127.0.0.1:${port}/${database}`,
    log,
    stop: () => {
      runAsServerUser(pgCtl, ['-D', dataDirectory, '-m', 'fast', '-w', 'stop']);
      rmSync(socketDirectory, { recursive: true, force: true });
    },
  };
};
