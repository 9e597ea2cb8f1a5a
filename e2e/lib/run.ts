/**
 * Running commands and daemons for the harness: every failure names the command, its output
 * and, where known, the fix; every daemon runs inside the guarded cgroup.
 */
import { type SpawnSyncOptions, spawn, spawnSync } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { guardCgroup, paths } from './settings.ts';

/** A failure the harness explains: what went wrong and what to do about it. */
export class HarnessError extends Error {
  readonly fix: string | undefined;
  constructor(message: string, fix?: string) {
    super(fix ? `${message}\n  fix: ${fix}` : message);
    this.fix = fix;
  }
}

export interface RunOptions extends Omit<SpawnSyncOptions, 'encoding'> {
  /** Text for the error message, instead of the command line. */
  what?: string;
  fix?: string;
  /** Return the result instead of throwing when the command fails. */
  allowFailure?: boolean;
  /** Run inside a node's network namespace. */
  netns?: string;
}

export interface RunResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion; throws a HarnessError with its output unless it succeeded. */
export const run = (command: string, args: string[], options: RunOptions = {}): RunResult => {
  const [file, argv] = options.netns
    ? ['nsenter', [`--net=/run/netns/${options.netns}`, '--', command, ...args]]
    : [command, args];
  const result = spawnSync(file, argv, {
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
    ...options,
  });
  const outcome = {
    status: result.status,
    stdout: result.stdout ?? '',
    stderr: result.stderr ?? '',
  };
  if (result.error && !options.allowFailure) {
    throw new HarnessError(
      `${options.what ?? command} could not run: ${result.error.message}`,
      options.fix ?? `install ${command} (the README of e2e/ lists what the harness needs)`,
    );
  }
  if (outcome.status !== 0 && !options.allowFailure) {
    const output = `${outcome.stdout}\n${outcome.stderr}`.trim().split('\n').slice(-30).join('\n');
    throw new HarnessError(
      `${options.what ?? [command, ...args].join(' ')} exited ${outcome.status}:\n${output}`,
      options.fix,
    );
  }
  return outcome;
};

/** Runs a command and returns its trimmed stdout. */
export const output = (command: string, args: string[], options: RunOptions = {}) =>
  run(command, args, options).stdout.trim();

/** True when the command exits 0 (for checks such as `iptables -C`). */
export const succeeds = (command: string, args: string[], options: RunOptions = {}) =>
  run(command, args, { ...options, allowFailure: true, stdio: ['ignore', 'pipe', 'pipe'] })
    .status === 0;

const pidFile = (name: string) => join(paths.pids, `${name}.pid`);
export const logFile = (name: string) => join(paths.logs, `${name}.log`);

/** The PID of a daemon the harness started, if it is still alive. */
export const daemonPid = (name: string): number | undefined => {
  if (!existsSync(pidFile(name))) return undefined;
  const pid = Number(readFileSync(pidFile(name), 'utf8'));
  try {
    process.kill(pid, 0);
    return pid;
  } catch {
    return undefined;
  }
};

export interface DaemonOptions {
  name: string;
  command: string;
  args: string[];
  /** Network namespace of a node; the host's when absent. */
  netns?: string;
  env?: Record<string, string>;
  cwd?: string;
}

/**
 * Starts a long-running process in the background, inside the guarded cgroup (joined before
 * the program starts, so its first packet is already covered), optionally in a node's network
 * namespace, with its output in logs/<name>.log and its PID in pids/<name>.pid.
 * Idempotent: a daemon that is alive is left as it is.
 */
export const startDaemon = (options: DaemonOptions) => {
  const running = daemonPid(options.name);
  if (running) return running;
  mkdirSync(paths.logs, { recursive: true });
  mkdirSync(paths.pids, { recursive: true });
  const log = openSync(logFile(options.name), 'a');
  const program = options.netns
    ? ['nsenter', `--net=/run/netns/${options.netns}`, '--', options.command, ...options.args]
    : [options.command, ...options.args];
  const child = spawn(
    '/bin/sh',
    ['-c', `echo $$ > ${guardCgroup}/cgroup.procs && exec "$@"`, 'guarded', ...program],
    {
      detached: true,
      stdio: ['ignore', log, log],
      env: { ...process.env, ...options.env },
      cwd: options.cwd,
    },
  );
  closeSync(log);
  if (!child.pid) throw new HarnessError(`${options.name} did not start (${options.command})`);
  child.unref();
  writeFileSync(pidFile(options.name), String(child.pid));
  return child.pid;
};

/** Sends SIGTERM to a daemon, waits up to `graceMs`, then SIGKILL; forgets its PID file. */
export const stopDaemon = async (name: string, graceMs = 10_000) => {
  const pid = daemonPid(name);
  if (pid) {
    process.kill(pid, 'SIGTERM');
    const deadline = Date.now() + graceMs;
    while (daemonPid(name) && Date.now() < deadline) await sleep(100);
    if (daemonPid(name)) process.kill(pid, 'SIGKILL');
    while (daemonPid(name)) await sleep(50);
  }
  rmSync(pidFile(name), { force: true });
};

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Polls `check` until it returns something other than undefined or false; throws a
 * HarnessError naming `what`, the last error and the fix after `timeoutMs`.
 */
export const waitUntil = async <T>(
  what: string,
  check: () => T | undefined | false | Promise<T | undefined | false>,
  options: { timeoutMs: number; fix?: string; intervalMs?: number },
): Promise<T> => {
  const deadline = Date.now() + options.timeoutMs;
  let last = '';
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      last = error instanceof Error ? error.message : String(error);
    }
    if (Date.now() > deadline) {
      throw new HarnessError(
        `timed out after ${Math.round(options.timeoutMs / 1000)} s waiting for ${what}${last ? `: ${last}` : ''}`,
        options.fix,
      );
    }
    await sleep(options.intervalMs ?? 500);
  }
};

/** The last lines of a daemon's log, for error messages. */
export const logTail = (name: string, lines = 20) => {
  try {
    return readFileSync(logFile(name), 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
};

/**
 * Runs a long command (a build) asynchronously, printing a line every `heartbeatSeconds` so
 * a person sees it is alive; throws a HarnessError with the tail of its output on failure.
 */
export const runLong = (
  command: string,
  args: string[],
  options: {
    what: string;
    fix?: string;
    cwd?: string;
    env?: NodeJS.ProcessEnv;
    heartbeatSeconds?: number;
  },
) =>
  new Promise<void>((resolvePromise, reject) => {
    const started = Date.now();
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let tail = '';
    const keep = (chunk: Buffer) => {
      tail = (tail + chunk.toString()).slice(-8000);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const heartbeat = setInterval(
      () =>
        console.log(`      ... ${options.what}: ${Math.round((Date.now() - started) / 1000)} s`),
      (options.heartbeatSeconds ?? 30) * 1000,
    );
    child.on('error', (error) => {
      clearInterval(heartbeat);
      reject(
        new HarnessError(`${options.what} could not run ${command}: ${error.message}`, options.fix),
      );
    });
    child.on('close', (status) => {
      clearInterval(heartbeat);
      if (status === 0) resolvePromise();
      else
        reject(
          new HarnessError(
            `${options.what} failed (exit ${status}):\n${tail.trim().split('\n').slice(-30).join('\n')}`,
            options.fix,
          ),
        );
    });
  });
