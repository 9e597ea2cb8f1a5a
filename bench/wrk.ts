/** Runs wrk against a loopback URL and parses its `--latency` report. */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';

/** What one wrk run measured. Latencies are in milliseconds. */
export interface WrkResult {
  url: string;
  threads: number;
  connections: number;
  seconds: number;
  requests: number;
  requestsPerSecond: number;
  latencyMs: { average: number; max: number; p50: number; p75: number; p90: number; p99: number };
  /** Responses that were not 2xx or 3xx. */
  non2xx: number;
  socketErrors: { connect: number; read: number; write: number; timeout: number };
  /** non2xx plus every socket error: anything but 0 makes the run suspect. */
  errors: number;
  raw: string;
}

/** The first line of `wrk --version`, or undefined when wrk is not on PATH. */
export const wrkVersion = (): string | undefined => {
  const result = spawnSync('wrk', ['--version'], { encoding: 'utf8' });
  if (result.error) return undefined;
  // wrk prints its version then usage, and exits 1: that is fine.
  return `${result.stdout}${result.stderr}`.split('\n')[0]?.trim() || 'wrk (unknown version)';
};

const unitMs: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Parses wrk's durations such as `850.00us`, `1.23ms`, `2.00s`. */
export const parseDurationMs = (text: string): number => {
  const match = /^([\d.]+)(us|ms|s|m|h)$/.exec(text.trim());
  const unit = match?.[2];
  if (!match || unit === undefined) throw new Error(`unrecognised wrk duration "${text}"`);
  return Number(match[1]) * (unitMs[unit] ?? Number.NaN);
};

const percentile = (raw: string, label: string) => {
  const match = new RegExp(`^\\s*${label}%\\s+(\\S+)\\s*$`, 'm').exec(raw);
  if (!match?.[1]) throw new Error(`wrk output has no ${label}% latency line:\n${raw}`);
  return parseDurationMs(match[1]);
};

/** Parses the text wrk prints with `--latency`. */
export const parseWrk = (
  raw: string,
  settings: { url: string; threads: number; connections: number; seconds: number },
): WrkResult => {
  const rps = /^Requests\/sec:\s+([\d.]+)/m.exec(raw);
  const total = /^\s*(\d+) requests in ([\d.]+\w+)/m.exec(raw);
  const latency = /^\s*Latency\s+(\S+)\s+\S+\s+(\S+)/m.exec(raw);
  if (!rps?.[1] || !total?.[1] || !latency?.[1] || !latency[2]) {
    throw new Error(`could not parse wrk output:\n${raw}`);
  }
  const sockets = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(raw);
  const socketErrors = {
    connect: Number(sockets?.[1] ?? 0),
    read: Number(sockets?.[2] ?? 0),
    write: Number(sockets?.[3] ?? 0),
    timeout: Number(sockets?.[4] ?? 0),
  };
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(raw)?.[1] ?? 0);
  return {
    ...settings,
    requests: Number(total[1]),
    requestsPerSecond: Number(rps[1]),
    latencyMs: {
      average: parseDurationMs(latency[1]),
      max: parseDurationMs(latency[2]),
      p50: percentile(raw, '50'),
      p75: percentile(raw, '75'),
      p90: percentile(raw, '90'),
      p99: percentile(raw, '99'),
    },
    non2xx,
    socketErrors,
    errors: non2xx + Object.values(socketErrors).reduce((sum, count) => sum + count, 0),
    raw,
  };
};

/**
 * Runs `wrk --latency` for a bounded time, against 127.0.0.1 or one of `labHosts` (addresses
 * of bridges and namespaces this machine made, e.g. the test cluster's). `prefix` runs wrk
 * through another command (e.g. `ip netns exec <namespace>`); `headers` are sent with every
 * request. `onSpawn` receives the child so that the caller can kill it on Ctrl-C.
 */
export const runWrk = (options: {
  url: string;
  threads: number;
  connections: number;
  seconds: number;
  labHosts?: string[];
  prefix?: string[];
  headers?: Record<string, string>;
  onSpawn?: (child: ChildProcess) => void;
}): Promise<WrkResult> => {
  const { url, threads, connections, seconds } = options;
  const { protocol, hostname } = new URL(url);
  if (
    !['http:', 'https:'].includes(protocol) ||
    !(hostname === '127.0.0.1' || (options.labHosts ?? []).includes(hostname))
  ) {
    throw new Error(`refusing to load anything but 127.0.0.1 and this machine's lab: ${url}`);
  }
  const [command = 'wrk', ...prefixArgs] = [...(options.prefix ?? []), 'wrk'];
  return new Promise((resolve, reject) => {
    const child = spawn(
      command,
      [
        ...prefixArgs,
        `-t${threads}`,
        `-c${connections}`,
        `-d${seconds}s`,
        '--latency',
        ...Object.entries(options.headers ?? {}).flatMap(([name, value]) => [
          '-H',
          `${name}: ${value}`,
        ]),
        url,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    options.onSpawn?.(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    // A hung wrk must not hang the benchmark.
    const guard = setTimeout(() => child.kill('SIGKILL'), (seconds + 30) * 1000);
    child.on('error', (error) => {
      clearTimeout(guard);
      reject(error);
    });
    child.on('close', (code, signal) => {
      clearTimeout(guard);
      if (code !== 0) {
        reject(new Error(`wrk exited with ${code ?? signal}: ${stderr || stdout}`));
        return;
      }
      try {
        resolve(parseWrk(stdout, { url, threads, connections, seconds }));
      } catch (error) {
        reject(error);
      }
    });
  });
};
