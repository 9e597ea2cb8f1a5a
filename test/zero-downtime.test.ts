/**
 * Zero downtime, tested on the bundled functions under a steady bounded load on loopback.
 *
 * Each test starts the production bundles (dist/api/server.mjs, dist/web/server.mjs) as their own
 * processes, drives a bounded keep-alive load at 127.0.0.1 only, and checks what Knative relies
 * on: SIGTERM finishes what is in flight and exits 0, readiness means "can serve", and a rolling
 * replacement behind a draining proxy loses no request.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import test from 'ava';
import { type Dispatcher, Pool } from 'undici';
import { bundles } from '../scripts/build.ts';
import { type FunctionProcess, spawnFunction, waitUntilReady } from '../scripts/processes.ts';
import { freePort } from './helpers/free-port.ts';
import {
  getIdentity,
  identityProblem,
  startLoad,
  startPartialRequest,
  tryConnect,
  waitFor,
} from './helpers/load.ts';
import { createNamesDatabase } from './helpers/names-database.ts';
import { startPostgres, type TestPostgres } from './helpers/postgres.ts';
import { requireBundles } from './helpers/stack.ts';

/** A spawned bundle and the moment it exited. */
interface Instance extends FunctionProcess {
  origin: string;
  exit: Promise<{ code: number | null; at: number }>;
}

const instances: Instance[] = [];
const cleanups: (() => Promise<unknown>)[] = [];
let database: TestPostgres | undefined;
let readerUrl: string;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves like `promise`, or rejects naming `what` after `ms`. */
const within = async <T>(promise: Promise<T>, ms: number, what: string): Promise<T> => {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
};

const start = async (
  name: string,
  bundle: 'api' | 'web',
  env: Record<string, string>,
): Promise<Instance> => {
  const port = await freePort();
  const spawned = spawnFunction({ name, script: bundles[bundle].output, port, env });
  const instance: Instance = {
    ...spawned,
    origin: `http://127.0.0.1:${port}`,
    exit: spawned.exited.then((code) => ({ code, at: performance.now() })),
  };
  instances.push(instance);
  return instance;
};

const startApi = (name: string, env: Record<string, string> = {}) =>
  start(name, 'api', { DATABASE_URL: readerUrl, SHUTDOWN_DRAIN_SECONDS: '5', ...env });

/** SIGTERM, then the exit code and how long after the signal the process was gone. */
const terminate = (instance: Instance) => {
  const sentAt = performance.now();
  instance.child.kill('SIGTERM');
  return { sentAt, exit: within(instance.exit, 5000, `${instance.name} exit after SIGTERM`) };
};

const drainTimeoutReached = (instance: Instance) =>
  instance.output.some((line) => line.includes('drain timeout reached'));

const listen = async (server: Server) => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
};

/** One GET: status, content type and body, or the error code when there was no response. */
const get = async (dispatcher: Dispatcher, path: string) => {
  try {
    const response = await dispatcher.request({
      method: 'GET',
      path,
      headersTimeout: 5000,
      bodyTimeout: 5000,
    });
    return {
      status: response.statusCode,
      contentType: String(response.headers['content-type'] ?? ''),
      body: await response.body.text(),
    };
  } catch (error) {
    return { status: 0, contentType: '', body: String((error as { code?: string }).code ?? error) };
  }
};

test.before(async () => {
  requireBundles();
  database = await startPostgres();
  ({ readerUrl } = await createNamesDatabase(database));
});

test.after.always(async () => {
  for (const instance of instances) {
    if (instance.child.exitCode === null && instance.child.signalCode === null) {
      instance.child.kill('SIGKILL');
    }
  }
  await Promise.all(instances.map((instance) => instance.exited));
  await Promise.all(cleanups.map((cleanup) => cleanup().catch(() => {})));
  database?.destroy();
});

test.serial(
  'zero downtime: SIGTERM to web with 20 pages in flight completes all 20, refuses new connections, exits 0',
  async (t) => {
    const inFlight = 20;
    const identity = {
      firstName: 'Vesper',
      lastName: 'Lynd',
      fullName: 'Vesper Lynd',
      gender: 'female',
    };
    let received = 0;
    const allReceived = Promise.withResolvers<void>();
    // A slow API: identities are handed out about 400 ms after they were asked for.
    const fakeApi = createServer((request, response) => {
      if (!request.url?.startsWith('/randomName')) {
        response.writeHead(404).end();
        return;
      }
      received++;
      if (received === inFlight) allReceived.resolve();
      // Held until 400 ms after the last call arrived, so all of them are in flight together.
      void allReceived.promise
        .then(() => sleep(400))
        .then(() => {
          response.writeHead(200, { 'content-type': 'application/json' });
          response.end(JSON.stringify(identity));
        });
    });
    const apiUrl = await listen(fakeApi);
    const web = await start('web', 'web', {
      API_URL: apiUrl,
      API_CONNECTIONS: '32',
      API_TIMEOUT_MS: '5000',
      API_RETRIES: '0',
      SHUTDOWN_DRAIN_SECONDS: '10',
    });
    await waitUntilReady(web, `${web.origin}/readyz`);

    // The client keeps its keep-alive connections open until the end: an instance must not
    // wait for its clients to hang up before it exits.
    const client = new Pool(web.origin, { connections: inFlight, keepAliveTimeout: 30_000 });
    t.teardown(() => client.destroy());
    let completed = 0;
    const pages = Array.from({ length: inFlight }, () =>
      get(client, '/?gender=female').finally(() => completed++),
    );
    await within(allReceived.promise, 5000, `the fake API receiving ${inFlight} calls`);
    t.is(completed, 0, 'every page is still in flight when SIGTERM is sent');

    const { sentAt, exit } = terminate(web);
    let probe = await tryConnect(web.port);
    while (probe === 'accepted' && performance.now() - sentAt < 1000) {
      await sleep(5);
      probe = await tryConnect(web.port);
    }
    const refusedAfterMs = Math.round(performance.now() - sentAt);
    const completedWhenRefused = completed;
    t.is(probe, 'ECONNREFUSED', 'a new connection after SIGTERM is refused');

    const results = await within(Promise.all(pages), 5000, 'the in-flight pages');
    t.deepEqual(
      results.map(({ status, body }) =>
        status === 200 && body.includes(identity.fullName) && body.trimEnd().endsWith('</html>')
          ? 'complete page'
          : `${status}: ${body.slice(-120)}`,
      ),
      Array(inFlight).fill('complete page'),
    );
    const { code, at } = await exit;
    t.is(code, 0);
    t.false(drainTimeoutReached(web), 'drained by itself, not cut at the drain timeout');
    t.log(
      `${inFlight} pages in flight at SIGTERM, all 200; new connections refused ${refusedAfterMs} ms ` +
        `after SIGTERM (${completedWhenRefused} pages done by then); exit 0 after ` +
        `${Math.round(at - sentAt)} ms`,
    );
  },
);

test.serial(
  'zero downtime: SIGTERM to api under a steady keep-alive load loses no response, exits 0',
  async (t) => {
    const api = await startApi('api');
    await waitUntilReady(api, `${api.origin}/readyz`);
    const load = startLoad({
      origin: api.origin,
      path: '/randomName',
      workers: 8,
      durationMs: 1500,
      maxRequests: 200_000,
    });
    await sleep(650);
    // Requests the api has begun to receive (headers half sent) when SIGTERM arrives: their
    // connections are busy, so they must be answered, not cut.
    const partial = await Promise.all(
      Array.from({ length: 4 }, () => startPartialRequest(api.port, '/randomName')),
    );
    t.teardown(() => {
      for (const request of partial) request.destroy();
    });
    await sleep(100);
    const { sentAt, exit } = terminate(api);
    t.true(
      await waitFor(() => api.output.some((line) => line.includes('shutting down')), 2000),
      'the api began to shut down',
    );
    const partialResponses = await Promise.all(partial.map((request) => request.finish()));
    const report = await load.done;
    const { code, at } = await exit;

    t.deepEqual(
      partialResponses.map(({ status, headers, body, error }) =>
        status === 200 && !error && identityProblem(JSON.parse(body)) === undefined
          ? `200 identity, connection: ${headers.connection}`
          : `${status} ${error ?? ''}: ${body.slice(0, 120)}`,
      ),
      Array(4).fill('200 identity, connection: close'),
      'requests in progress at SIGTERM are answered, and told the connection closes',
    );

    t.is(code, 0);
    t.false(drainTimeoutReached(api), 'drained by itself, not cut at the drain timeout');
    t.deepEqual(report.failures.slice(0, 10), [], 'every response is a complete 200 identity');
    const okBefore = report.okBefore(sentAt);
    t.true(okBefore > 100, `${okBefore} successes before SIGTERM`);
    const connectionErrors = Object.values(report.connectionErrors).reduce((a, b) => a + b, 0);
    t.log(
      `${report.requests} requests from 8 workers: ${okBefore} ok before SIGTERM, ` +
        `4 half-sent requests completed after SIGTERM all 200, ` +
        `${report.ok - okBefore} ok after; ${connectionErrors} connection-level errors without ` +
        `a response ${JSON.stringify(report.connectionErrors)}; exit 0 after ` +
        `${Math.round(at - sentAt)} ms`,
    );
  },
);

test.serial(
  'zero downtime: a starting api reports ready only when it can serve, database down or up',
  async (t) => {
    const server = database as TestPostgres;
    server.stop();
    let restarted = false;
    const restart = () => {
      if (!restarted) server.start();
      restarted = true;
    };
    // The database comes back whatever happens, so the tests after this one can use it.
    t.teardown(restart);
    const api = await startApi('api-db-down', {
      DB_CONNECT_TIMEOUT_MS: '300',
      NAMES_REFRESH_SECONDS: '1',
    });
    await waitUntilReady(api, `${api.origin}/healthz`);
    const client = new Pool(api.origin, { connections: 2 });
    t.teardown(() => client.destroy());

    const ready = await get(client, '/readyz');
    t.is(ready.status, 503, 'not ready while the database is down');
    t.is(JSON.parse(ready.body).status, 'unavailable');
    const name = await get(client, '/randomName');
    t.is(name.status, 503);
    t.is(name.contentType, 'application/problem+json');
    t.like(JSON.parse(name.body), { status: 503 });
    t.regex(JSON.parse(name.body).detail, /names database is unavailable/);
    t.is((await get(client, '/healthz')).status, 200, 'alive all the same');

    restart();
    const startedAt = performance.now();
    const readyButFailing: string[] = [];
    let notReady = 0;
    let readyChecks = 0;
    let readyAfterMs: number | undefined;
    while (readyChecks < 25 && performance.now() - startedAt < 10_000) {
      const readiness = await get(client, '/readyz');
      if (readiness.status === 200) {
        readyAfterMs ??= Math.round(performance.now() - startedAt);
        readyChecks++;
        const outcome = await getIdentity(client, '/randomName');
        if (outcome.kind !== 'ok') readyButFailing.push(JSON.stringify(outcome));
      } else notReady++;
      await sleep(20);
    }
    t.deepEqual(readyButFailing, [], 'never ready but failing');
    t.truthy(readyAfterMs, 'ready within 10 s of the database starting');
    t.log(
      `database down: /readyz 503, /randomName 503 problem; after the database started: ` +
        `${notReady} not-ready polls, ready after ${readyAfterMs} ms, ${readyChecks} ready polls ` +
        `each followed by a 200 identity`,
    );

    // A fresh instance against a running database, polled from the moment it is spawned.
    const fresh = await startApi('api-fresh');
    const freshClient = new Pool(fresh.origin, { connections: 2 });
    t.teardown(() => freshClient.destroy());
    const spawnedAt = performance.now();
    const seen: Record<string, number> = {};
    const freshFailing: string[] = [];
    let freshReady = 0;
    let firstReadyMs: number | undefined;
    while (freshReady < 20 && performance.now() - spawnedAt < 10_000) {
      const readiness = await get(freshClient, '/readyz');
      const key = readiness.status === 0 ? readiness.body : String(readiness.status);
      seen[key] = (seen[key] ?? 0) + 1;
      if (readiness.status === 200) {
        firstReadyMs ??= Math.round(performance.now() - spawnedAt);
        freshReady++;
        const outcome = await getIdentity(freshClient, '/randomName');
        if (outcome.kind !== 'ok') freshFailing.push(JSON.stringify(outcome));
      }
      await sleep(5);
    }
    t.deepEqual(freshFailing, [], 'never ready but failing');
    t.is(freshReady, 20, 'the fresh instance became ready');
    t.log(
      `fresh spawn: /readyz answers ${JSON.stringify(seen)}, first 200 after ${firstReadyMs} ms`,
    );

    for (const instance of [api, fresh]) t.is((await terminate(instance).exit).code, 0);
  },
);

/** One upstream of the test proxy, with what it is doing. */
interface Upstream {
  name: string;
  pool: Pool;
  inFlight: number;
  served: number;
  failed: number;
}

test.serial(
  'zero downtime: a rolling replacement behind a draining proxy loses no request',
  async (t) => {
    const a = await startApi('api-a');
    await waitUntilReady(a, `${a.origin}/readyz`);
    const upstream = (instance: Instance): Upstream => ({
      name: instance.name,
      pool: new Pool(instance.origin, { connections: 16, pipelining: 1 }),
      inFlight: 0,
      served: 0,
      failed: 0,
    });
    const upstreamA = upstream(a);
    let current = upstreamA;
    // What Knative's routing does for the test: every request goes to the current revision.
    const proxy = createServer(async (request: IncomingMessage, response: ServerResponse) => {
      const target = current;
      target.inFlight++;
      try {
        const answer = await target.pool.request({
          method: 'GET',
          path: request.url ?? '/',
          headers: { accept: 'application/json' },
          headersTimeout: 5000,
          bodyTimeout: 5000,
        });
        const body = Buffer.from(await answer.body.arrayBuffer());
        if (answer.statusCode === 200) target.served++;
        else target.failed++;
        response.writeHead(answer.statusCode, {
          'content-type': String(answer.headers['content-type'] ?? 'application/octet-stream'),
          'x-upstream': target.name,
        });
        response.end(body);
      } catch (error) {
        target.failed++;
        response.writeHead(502, { 'content-type': 'text/plain' });
        response.end(`${target.name}: ${(error as { code?: string }).code ?? error}`);
      } finally {
        target.inFlight--;
      }
    });
    const proxyUrl = await listen(proxy);

    const load = startLoad({
      origin: proxyUrl,
      path: '/randomName',
      workers: 8,
      durationMs: 15_000,
      maxRequests: 200_000,
    });
    t.teardown(() => load.stop());
    await sleep(300);
    const b = await startApi('api-b');
    const upstreamB = upstream(b);
    // Switch on the very first 200 from B's /readyz: it must mean B can serve.
    const bStartedAt = performance.now();
    let bReady = await get(upstreamB.pool, '/readyz');
    while (bReady.status !== 200 && performance.now() - bStartedAt < 10_000) {
      await sleep(5);
      bReady = await get(upstreamB.pool, '/readyz');
    }
    t.is(bReady.status, 200, 'B became ready');
    const bReadyAfterMs = Math.round(performance.now() - bStartedAt);
    t.teardown(() => Promise.all([upstreamA.pool.destroy(), upstreamB.pool.destroy()]));
    const servedByABeforeSwitch = upstreamA.served;
    current = upstreamB;
    // Knative's queue-proxy drains before the container gets SIGTERM.
    t.true(await waitFor(() => upstreamA.inFlight === 0, 2000), 'A drained');
    const { sentAt, exit } = terminate(a);
    await sleep(500);
    const report = await load.stop();
    const { code, at } = await exit;

    t.deepEqual(report.failures.slice(0, 10), [], 'every response is a complete 200 identity');
    t.deepEqual(report.connectionErrors, {}, 'no client request failed');
    t.is(report.ok, report.requests);
    t.is(code, 0, 'A exited 0');
    t.false(drainTimeoutReached(a), 'A drained by itself, not cut at the drain timeout');
    t.is(upstreamA.failed + upstreamB.failed, 0);
    t.true(upstreamA.served > 0, 'A served requests');
    t.true(upstreamB.served > 0, 'B served requests');
    t.log(
      `${report.requests} requests through the proxy, all 200: A served ${upstreamA.served} ` +
        `(${servedByABeforeSwitch} before B was ready, ${bReadyAfterMs} ms after B's spawn), ` +
        `B served ${upstreamB.served}; ` +
        `A exited 0 ${Math.round(at - sentAt)} ms after SIGTERM`,
    );
    t.is((await terminate(b).exit).code, 0);
  },
);
