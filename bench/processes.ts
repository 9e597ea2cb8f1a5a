/** Starting, probing, measuring and stopping the server processes under test. */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { get } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';

/** A server started by the benchmark; its stdout and stderr go to `logFile`. */
export interface ServerProcess {
  name: string;
  child: ChildProcess;
  pid: number;
  port: number;
  logFile: string;
  /** Wall-clock origin: `performance.now()` just before spawn. */
  spawnedAt: number;
  /** Set once the process has exited. */
  exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  exited: Promise<void>;
}

/** Every child still alive, so that a last-resort exit hook can kill them. */
export const liveChildren = new Set<ChildProcess>();

/** Spawns `node <args>` (this same node binary) with extra environment. */
export const startProcess = (options: {
  name: string;
  args: string[];
  env: Record<string, string>;
  port: number;
  cwd: string;
  logFile: string;
}): ServerProcess => {
  const log = openSync(options.logFile, 'a');
  const spawnedAt = performance.now();
  const child = spawn(process.execPath, options.args, {
    cwd: options.cwd,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', log, log],
  });
  closeSync(log);
  if (child.pid === undefined) throw new Error(`could not spawn ${options.name}`);
  liveChildren.add(child);
  const handle: ServerProcess = {
    name: options.name,
    child,
    pid: child.pid,
    port: options.port,
    logFile: options.logFile,
    spawnedAt,
    exit: undefined,
    exited: new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        liveChildren.delete(child);
        handle.exit = { code, signal };
        resolve();
      });
    }),
  };
  return handle;
};

/**
 * One GET on a fresh connection (no keep-alive, no agent pool); resolves with the status, or 0
 * on a connection error. Resolves when the response head arrives.
 */
export const probe = (url: string, timeoutMs = 1000) =>
  new Promise<number>((resolve) => {
    const request = get(url, { agent: false, timeout: timeoutMs }, (response) => {
      resolve(response.statusCode ?? 0);
      response.resume();
    });
    request.on('timeout', () => request.destroy());
    request.on('error', () => resolve(0));
  });

const logTail = (file: string) => {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-15).join('\n');
  } catch {
    return '(no log)';
  }
};

/**
 * Polls `url` every `intervalMs` until it answers 200; returns the milliseconds since the
 * process was spawned. Fails fast if the process exits, and after `timeoutMs`.
 */
export const waitFor200 = async (
  server: ServerProcess,
  url: string,
  options: { intervalMs?: number; timeoutMs?: number } = {},
) => {
  const intervalMs = options.intervalMs ?? 2;
  const deadline = performance.now() + (options.timeoutMs ?? 30_000);
  let last = 0;
  while (performance.now() < deadline) {
    if (server.exit) {
      throw new Error(
        `${server.name} exited (${server.exit.code ?? server.exit.signal}) before answering 200 on ${url}; log tail:\n${logTail(server.logFile)}`,
      );
    }
    last = await probe(url);
    if (last === 200) return performance.now() - server.spawnedAt;
    await sleep(intervalMs);
  }
  throw new Error(
    `${server.name} did not answer 200 on ${url} in time (last status ${last}); log tail:\n${logTail(server.logFile)}`,
  );
};

/** SIGTERM, wait for the exit (up to `timeoutMs`), then SIGKILL. Safe to call twice. */
export const stopProcess = async (server: ServerProcess, timeoutMs = 10_000) => {
  if (server.exit) return;
  server.child.kill('SIGTERM');
  const timer = setTimeout(() => server.child.kill('SIGKILL'), timeoutMs);
  await server.exited;
  clearTimeout(timer);
};

/** Resident memory of a process from /proc, in kB (kernel "kB" = 1024 bytes). */
export const readMemory = (pid: number): { rssKb: number; hwmKb: number } => {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) =>
    Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1]);
  return { rssKb: field('VmRSS'), hwmKb: field('VmHWM') };
};

/**
 * Samples VmRSS every `intervalMs` until stopped; returns the first, last and highest sample in
 * kB (first vs last shows whether memory still grows under steady load).
 */
export const sampleRss = (pid: number, intervalMs = 100) => {
  const samples: number[] = [];
  const take = () => {
    try {
      samples.push(readMemory(pid).rssKb);
    } catch {
      // the process is gone; keep what was sampled
    }
  };
  take();
  const timer = setInterval(take, intervalMs);
  return () => {
    clearInterval(timer);
    take();
    return {
      firstKb: samples[0] ?? 0,
      lastKb: samples.at(-1) ?? 0,
      maxKb: Math.max(0, ...samples),
    };
  };
};
