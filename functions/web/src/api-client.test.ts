import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createLogger } from '@secretid/lib/logger';
import test from 'ava';
import { ApiUnavailableError, createApiClient, type Identity } from './api-client.ts';

const ada: Identity = {
  firstName: 'Ada',
  lastName: 'Lovelace',
  fullName: 'Ada Lovelace',
  gender: 'female',
};

const quietLogger = createLogger('web-test', 'error', () => {});

type Handler = (request: IncomingMessage, response: ServerResponse, hit: number) => void;

const json = (
  response: ServerResponse,
  status: number,
  body: unknown,
  type = 'application/json',
) => {
  response.writeHead(status, { 'content-type': type });
  response.end(JSON.stringify(body));
};

/** A real HTTP server on loopback standing in for the API. */
const startFakeApi = async (handler: Handler) => {
  const paths: string[] = [];
  const sockets = new Set<unknown>();
  const server = createServer((request, response) => {
    paths.push(request.url ?? '');
    handler(request, response, paths.length);
  });
  server.on('connection', (socket) => sockets.add(socket));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    paths,
    connections: () => sockets.size,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
};

/** A loopback port with nothing listening on it. */
const closedPort = async () => {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
};

const clientFor = (
  baseUrl: string,
  overrides: { timeoutMs?: number; retries?: number; connections?: number } = {},
) =>
  createApiClient({
    baseUrl,
    connections: overrides.connections ?? 4,
    timeoutMs: overrides.timeoutMs ?? 1000,
    retries: overrides.retries ?? 2,
    logger: quietLogger,
  });

test('returns the identity and forwards the gender, keeping a base path', async (t) => {
  const api = await startFakeApi((_request, response) => json(response, 200, ada));
  const client = clientFor(`${api.url}/v1/`);
  t.teardown(async () => {
    await client.close();
    await api.close();
  });
  t.deepEqual(await client.randomName({ gender: 'female' }), ada);
  t.deepEqual(await client.randomName(), ada);
  t.deepEqual(api.paths, ['/v1/randomName?gender=female', '/v1/randomName']);
});

test('keeps connections alive and never opens more than the cap', async (t) => {
  const api = await startFakeApi((_request, response) =>
    setTimeout(() => json(response, 200, ada), 20),
  );
  const client = clientFor(api.url, { connections: 2, timeoutMs: 10_000 });
  t.teardown(async () => {
    await client.close();
    await api.close();
  });
  const identities = await Promise.all(Array.from({ length: 10 }, () => client.randomName()));
  t.is(identities.length, 10);
  t.is(api.connections(), 2);
  await client.randomName();
  t.is(api.connections(), 2, 'a later call reuses a kept-alive connection');
});

test('retries a 503 and a 502, then succeeds', async (t) => {
  const api = await startFakeApi((_request, response, hit) => {
    if (hit === 1) return json(response, 503, { status: 503 }, 'application/problem+json');
    if (hit === 2) return json(response, 502, { status: 502 }, 'application/problem+json');
    json(response, 200, ada);
  });
  const client = clientFor(api.url, { retries: 2 });
  t.teardown(async () => {
    await client.close();
    await api.close();
  });
  t.deepEqual(await client.randomName(), ada);
  t.is(api.paths.length, 3);
});

test('gives up after the configured retries with the last status', async (t) => {
  const api = await startFakeApi((_request, response) =>
    json(response, 504, {}, 'application/problem+json'),
  );
  const client = clientFor(api.url, { retries: 1 });
  t.teardown(async () => {
    await client.close();
    await api.close();
  });
  const error = await t.throwsAsync(client.randomName(), { instanceOf: ApiUnavailableError });
  t.is(error?.status, 504);
  t.is(error?.attempts, 2);
  t.is(error?.cause, 'API answered 504');
  t.is(api.paths.length, 2);
});

test('a 400 is not retried', async (t) => {
  const api = await startFakeApi((_request, response) =>
    json(response, 400, { title: 'Bad Request', status: 400 }, 'application/problem+json'),
  );
  const client = clientFor(api.url, { retries: 3 });
  t.teardown(async () => {
    await client.close();
    await api.close();
  });
  const error = await t.throwsAsync(client.randomName({ gender: 'male' }), {
    instanceOf: ApiUnavailableError,
  });
  t.is(error?.status, 400);
  t.is(error?.attempts, 1);
  t.is(api.paths.length, 1);
});

test('a slow API fails within the deadline and is not hammered with retries', async (t) => {
  const timeoutMs = 200;
  const retries = 2;
  const api = await startFakeApi((_request, response) =>
    setTimeout(() => json(response, 200, ada), 5000).unref(),
  );
  const client = clientFor(api.url, { timeoutMs, retries });
  t.teardown(async () => {
    await api.close();
    await client.close();
  });
  const started = performance.now();
  const error = await t.throwsAsync(client.randomName(), { instanceOf: ApiUnavailableError });
  const elapsed = performance.now() - started;
  t.regex(error?.cause ?? '', /no answer within 200 ms/);
  t.true(elapsed >= timeoutMs - 20, `took ${elapsed} ms`);
  t.true(elapsed < timeoutMs * (retries + 1) + 300, `took ${elapsed} ms`);
  t.true(elapsed <= client.deadlineMs + 100, `took ${elapsed} ms`);
  t.is(api.paths.length, 1);
});

test('a refused connection is retried, then reported as a typed error', async (t) => {
  const port = await closedPort();
  const client = clientFor(`http://127.0.0.1:${port}`, { retries: 2 });
  t.teardown(() => client.close());
  const started = performance.now();
  const error = await t.throwsAsync(client.randomName(), { instanceOf: ApiUnavailableError });
  t.regex(error?.cause ?? '', /ECONNREFUSED/);
  t.is(error?.attempts, 3);
  t.is(error?.status, undefined);
  t.true(performance.now() - started < client.deadlineMs);
});

test('an answer that is not an identity is rejected, not retried', async (t) => {
  const answers: [number, string, string][] = [
    [200, 'text/html', '<html>oops</html>'],
    [200, 'application/json', '{"firstName": "Ada"'],
    [200, 'application/json', JSON.stringify({ ...ada, gender: 'robot' })],
    [200, 'application/json', JSON.stringify({ ...ada, fullName: '' })],
    [200, 'application/json', JSON.stringify([ada])],
  ];
  for (const [status, type, body] of answers) {
    const api = await startFakeApi((_request, response) => {
      response.writeHead(status, { 'content-type': type });
      response.end(body);
    });
    const client = clientFor(api.url);
    const error = await t.throwsAsync(
      client.randomName(),
      { instanceOf: ApiUnavailableError },
      body,
    );
    t.is(error?.attempts, 1, body);
    t.is(api.paths.length, 1, body);
    await client.close();
    await api.close();
  }
});

test('an oversized answer is rejected', async (t) => {
  const api = await startFakeApi((_request, response) =>
    json(response, 200, { ...ada, padding: 'x'.repeat(100_000) }),
  );
  const client = clientFor(api.url);
  t.teardown(async () => {
    await client.close();
    await api.close();
  });
  await t.throwsAsync(client.randomName(), { instanceOf: ApiUnavailableError });
});

test('the caller can cancel a call', async (t) => {
  const api = await startFakeApi((_request, response) =>
    setTimeout(() => json(response, 200, ada), 5000).unref(),
  );
  const client = clientFor(api.url, { timeoutMs: 2000 });
  t.teardown(async () => {
    await api.close();
    await client.close();
  });
  const controller = new AbortController();
  setTimeout(() => controller.abort(), 50);
  const started = performance.now();
  await t.throwsAsync(client.randomName({ signal: controller.signal }), {
    instanceOf: ApiUnavailableError,
  });
  t.true(performance.now() - started < 1000);
  t.true(api.paths.length <= 1, 'not retried after the caller gave up');
});
