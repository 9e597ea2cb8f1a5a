import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import test from 'ava';

const source = fileURLToPath(new URL('./server.ts', import.meta.url));
const bundle = fileURLToPath(new URL('../../../dist/web/server.mjs', import.meta.url));
// The bundle exists after `npm run build` (which `npm test` runs first); then it is tested too.
const entries = existsSync(bundle) ? [source, bundle] : [source];

interface Run {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
}

const run = (entry: string, env: Record<string, string>): Run => {
  const child = spawn(process.execPath, [entry], {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk) => {
    stdout += chunk;
  });
  child.stderr?.on('data', (chunk) => {
    stderr += chunk;
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, stdout: () => stdout, stderr: () => stderr, exited };
};

/** Waits until the server's output matches, for up to 10 s. */
const waitForOutput = async (server: Run, pattern: RegExp) => {
  for (let waited = 0; waited < 10_000; waited += 25) {
    const match = pattern.exec(server.stdout());
    if (match) return match;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`no ${pattern} in output: ${server.stdout()} ${server.stderr()}`);
};

/** Resolves to the port from the server's `listening` log line. */
const listeningPort = async (server: Run) =>
  Number((await waitForOutput(server, /"message":"listening","port":(\d+)/))[1]);

const startFakeApi = async () => {
  const server = createServer((_request, response) => {
    response.writeHead(200, { 'content-type': 'application/json' });
    response.end(
      JSON.stringify({
        firstName: 'Ada',
        lastName: 'Lovelace',
        fullName: 'Ada Lovelace',
        gender: 'female',
      }),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
};

for (const entry of entries) {
  const name = entry === source ? 'source' : 'bundle';

  test(`${name}: a configuration error names the variable and exits 2`, async (t) => {
    const server = run(entry, { API_URL: 'http://api.secretid', API_RETRIES: '9' });
    t.is(await server.exited, 2);
    t.regex(
      server.stderr(),
      /^invalid configuration: API_RETRIES must be an integer from 0 to 5, got "9"/,
    );
  });

  test(`${name}: a missing API_URL exits 2`, async (t) => {
    const server = run(entry, {});
    t.is(await server.exited, 2);
    t.is(server.stderr(), 'invalid configuration: API_URL is required\n');
  });

  test(`${name}: serves the page from a real API and stops cleanly on SIGTERM`, async (t) => {
    const api = await startFakeApi();
    const server = run(entry, { API_URL: api.url, PORT: '0', SHUTDOWN_DRAIN_SECONDS: '2' });
    t.teardown(async () => {
      server.child.kill('SIGKILL');
      await api.close();
    });
    const port = await listeningPort(server);
    const page = await fetch(`http://127.0.0.1:${port}/?gender=female`);
    t.is(page.status, 200);
    t.regex(await page.text(), /Ada Lovelace/);
    t.is((await fetch(`http://127.0.0.1:${port}/readyz`)).status, 200);
    server.child.kill('SIGTERM');
    t.is(await server.exited, 0);
    await t.notThrowsAsync(waitForOutput(server, /"message":"stopped"/));
  });

  test(`${name}: shows the friendly page when the API is unreachable, and logs why`, async (t) => {
    const server = run(entry, { API_URL: 'http://127.0.0.1:9', PORT: '0', API_RETRIES: '1' });
    t.teardown(() => server.child.kill('SIGKILL'));
    const port = await listeningPort(server);
    const page = await fetch(`http://127.0.0.1:${port}/`);
    t.is(page.status, 503);
    t.regex(await page.text(), /Our identity forger is out of the office/);
    await t.notThrowsAsync(waitForOutput(server, /"level":"warn".*"cause":"ECONNREFUSED/));
  });
}
