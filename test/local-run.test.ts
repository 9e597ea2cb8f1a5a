import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { localHosts } from '../scripts/local-hosts.ts';
import { freePort } from './helpers/free-port.ts';
import { getThroughEdge } from './helpers/stack.ts';

const dataDirectory = mkdtempSync(join(tmpdir(), 'secretid-local-'));
test.after.always(() => {
  rmSync(dataDirectory, { recursive: true, force: true });
  rmSync(`${dataDirectory}.lock`, { force: true });
});

/** Runs `npm start`'s script the way a person does, and waits for its "running" banner. */
const startLocal = async (port: number) => {
  const child = spawn(process.execPath, ['scripts/local-run.ts'], {
    env: { ...process.env, PORT: String(port), LOCAL_DATA_DIR: dataDirectory, LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk) => {
    output += chunk;
  });
  child.stderr?.on('data', (chunk) => {
    output += chunk;
  });
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  );
  const deadline = Date.now() + 60_000;
  while (!output.includes('secretid is running.')) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`local run did not start:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return { child: child as ChildProcess, exited, output: () => output };
};

test.serial('npm start serves through the edge, stops on Ctrl-C, and keeps its data', async (t) => {
  const port = await freePort();
  const edgeUrl = `http://127.0.0.1:${port}`;
  const first = await startLocal(port);
  try {
    t.regex(first.output(), /migrations: 2026-11-24-001-name-tables/);
    t.regex(
      first.output(),
      new RegExp(`curl -H 'Host: ${localHosts.api}' http://localhost:${port}/randomName`),
    );
    const response = await getThroughEdge(edgeUrl, localHosts.api, '/randomName');
    t.is(response.status, 200);
    t.truthy((await response.json()).fullName);
    for (const host of [`localhost:${port}`, `127.0.0.1:${port}`]) {
      const page = await getThroughEdge(edgeUrl, host, '/');
      t.is(page.status, 200, host);
      t.regex(await page.text(), /Your secret identity/);
    }
    // The address bar's http://[::1]:port/: the edge listens on IPv6 loopback too.
    const ipv6 = await getThroughEdge(`http://[::1]:${port}`, `[::1]:${port}`, '/');
    t.is(ipv6.status, 200, '[::1]');
    t.regex(await ipv6.text(), /Your secret identity/);
    const unknown = await getThroughEdge(edgeUrl, 'evil.example', '/');
    t.is(unknown.status, 404);
    t.notRegex(await unknown.text(), /evil\.example/, 'the Host header is not echoed');
    // The functions (the child processes of npm start's script) listen on loopback only.
    const children = spawnSync('pgrep', ['-P', String(first.child.pid)], { encoding: 'utf8' })
      .stdout.split('\n')
      .filter(Boolean);
    const sockets = spawnSync('ss', ['-Hltnp'], { encoding: 'utf8' })
      .stdout.split('\n')
      .filter((line) => children.some((pid) => line.includes(`pid=${pid},`)));
    t.true(sockets.length >= 2, `the api and the web listen: ${sockets.join('\n')}`);
    for (const socket of sockets)
      t.regex(socket, /^LISTEN\s+\d+\s+\d+\s+127\.0\.0\.1:\d+ /, socket);
  } finally {
    first.child.kill('SIGINT');
  }
  t.is(await first.exited, 0);
  t.regex(first.output(), /stopped\n$/);

  // The second start finds the migrated, seeded database in the same folder.
  const second = await startLocal(port);
  try {
    t.regex(second.output(), /migrations: already up to date/);
    const response = await getThroughEdge(edgeUrl, localHosts.api, '/randomName?count=3');
    t.is((await response.json()).names.length, 3);
  } finally {
    second.child.kill('SIGINT');
  }
  t.is(await second.exited, 0);
});

test.serial(
  'a second npm start on the same data folder fails at once, before opening the database, and the first keeps serving',
  async (t) => {
    const port = await freePort();
    const first = await startLocal(port);
    try {
      const started = Date.now();
      const second = spawnSync(process.execPath, ['scripts/local-run.ts'], {
        env: { ...process.env, PORT: String(await freePort()), LOCAL_DATA_DIR: dataDirectory },
        encoding: 'utf8',
        timeout: 30_000,
      });
      t.is(second.status, 2, second.stdout + second.stderr);
      t.regex(
        second.stderr,
        new RegExp(`another npm start \\(pid ${first.child.pid}\\) is running`),
      );
      t.regex(second.stderr, /LOCAL_DATA_DIR/);
      t.notRegex(second.stdout, /migrations|starting embedded/, 'nothing opened the database');
      t.log(`refused in ${Date.now() - started} ms`);
      const response = await getThroughEdge(
        `http://127.0.0.1:${port}`,
        localHosts.api,
        '/randomName',
      );
      t.is(response.status, 200);
    } finally {
      first.child.kill('SIGINT');
    }
    t.is(await first.exited, 0);
    // A lock left by a killed run does not block the next one.
    writeFileSync(`${dataDirectory}.lock`, '999999999\n');
    const next = await startLocal(port);
    next.child.kill('SIGINT');
    t.is(await next.exited, 0);
  },
);
