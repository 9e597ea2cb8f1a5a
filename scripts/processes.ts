import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

/** A function (api or web) running as its own process. */
export interface FunctionProcess {
  name: string;
  port: number;
  child: ChildProcess;
  /** Output lines seen so far (JSON log lines and anything else). */
  output: string[];
  /** Resolves with the exit code once the process has exited. */
  exited: Promise<number | null>;
  /** Sends SIGTERM and waits for the exit code. */
  stop(): Promise<number | null>;
}

/**
 * Starts `node <script>` with the given environment and collects its output; `echo` also prints
 * each line prefixed with the name.
 */
export const spawnFunction = (options: {
  name: string;
  script: string;
  port: number;
  env: Record<string, string>;
  echo?: boolean;
}): FunctionProcess => {
  const child = spawn(process.execPath, [options.script], {
    env: { PATH: process.env.PATH ?? '', ...options.env, PORT: String(options.port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream }).on('line', (line) => {
      output.push(line);
      if (options.echo) console.log(`[${options.name}] ${line}`);
    });
  }
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  );
  return {
    name: options.name,
    port: options.port,
    child,
    output,
    exited,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
};

/** Polls a URL until it answers 200, the process exits, or the deadline passes. */
export const waitUntilReady = async (
  process: FunctionProcess,
  url: string,
  timeoutMs = 15_000,
): Promise<void> => {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer yet';
  while (Date.now() < deadline) {
    if (process.child.exitCode !== null) {
      throw new Error(
        `${process.name} exited with code ${process.child.exitCode}:\n${process.output.slice(-10).join('\n')}`,
      );
    }
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(1000) });
      await response.body?.cancel();
      if (response.status === 200) return;
      last = `HTTP ${response.status}`;
    } catch (error) {
      last = (error as Error).message;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(
    `${process.name} not ready at ${url} after ${timeoutMs} ms (${last}):\n${process.output.slice(-10).join('\n')}`,
  );
};
