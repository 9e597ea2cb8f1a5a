import { connect } from 'node:net';
import test from 'ava';
import { Hono } from 'hono';
import { createLogger } from './logger.ts';
import { startServer } from './serve.ts';

/** Sends one raw HTTP/1.1 request and returns the status line and the whole answer. */
const raw = (port: number, request: string) =>
  new Promise<string>((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let answer = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk) => {
      answer += chunk;
    });
    socket.on('end', () => resolve(answer));
    socket.on('error', reject);
    socket.setTimeout(5000, () => socket.destroy(new Error('no answer within 5 s')));
    socket.write(request);
  });

test('a request with two Host headers is refused with 400; one Host header is served', async (t) => {
  const app = new Hono();
  app.get('/', (c) => c.text('served'));
  const running = await startServer({
    app,
    port: 0,
    host: '127.0.0.1',
    logger: createLogger('test', 'error', () => {}),
    drainTimeoutMs: 1000,
    exit: () => {},
  });
  try {
    const two = await raw(
      running.port,
      'GET / HTTP/1.1\r\nHost: api.secretid\r\nHost: evil.example\r\nConnection: close\r\n\r\n',
    );
    t.regex(two, /^HTTP\/1\.1 400 /);
    t.regex(two, /exactly one Host header/);
    t.notRegex(two, /served/);
    const one = await raw(
      running.port,
      'GET / HTTP/1.1\r\nHost: api.secretid\r\nConnection: close\r\n\r\n',
    );
    t.regex(one, /^HTTP\/1\.1 200 /);
    t.regex(one, /served$/);
  } finally {
    await running.shutdown('test');
  }
});

/** A keep-alive connection that records everything the server sends and whether it closed. */
const keepAlive = (port: number) => {
  const socket = connect(port, '127.0.0.1');
  const state = { received: '', closed: false, error: '' };
  socket.setEncoding('utf8');
  socket.on('data', (chunk) => {
    state.received += chunk;
  });
  socket.on('close', () => {
    state.closed = true;
  });
  socket.on('error', (error) => {
    state.error = error.message;
  });
  const answers = () => state.received.match(/HTTP\/1\.1 \d{3} /g)?.length ?? 0;
  const until = async (predicate: () => boolean, what: string) => {
    for (let waited = 0; !predicate(); waited += 10) {
      if (waited > 5000)
        throw new Error(`${what}: not within 5 s (got ${state.received.length} bytes)`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  };
  return { socket, state, answers, until };
};

test('a drain answers every request already sent on an open keep-alive connection, with Connection: close, then closes it', async (t) => {
  const app = new Hono();
  app.get('/', async (c) => {
    await new Promise((resolve) => setTimeout(resolve, 20));
    return c.text('served');
  });
  const running = await startServer({
    app,
    port: 0,
    host: '127.0.0.1',
    logger: createLogger('test', 'error', () => {}),
    drainTimeoutMs: 5000,
    exit: () => {},
  });
  const request = 'GET / HTTP/1.1\r\nHost: api.secretid\r\n\r\n';
  const connections = Array.from({ length: 16 }, () => keepAlive(running.port));
  for (const connection of connections) connection.socket.write(request);
  await Promise.all(connections.map((c) => c.until(() => c.answers() === 1, 'first answer')));
  // The second request of every connection is on the wire before the drain begins: written in
  // the same tick as shutdown(), so the server has not read any of them yet.
  for (const connection of connections) connection.socket.write(request);
  const drained = running.shutdown('test');
  await Promise.all(connections.map((c) => c.until(() => c.state.closed, 'close')));
  await drained;
  for (const [index, connection] of connections.entries()) {
    t.is(connection.answers(), 2, `connection ${index}: ${JSON.stringify(connection.state)}`);
    t.is(connection.state.error, '', `connection ${index} was reset`);
    const second = connection.state.received.slice(
      connection.state.received.lastIndexOf('HTTP/1.1'),
    );
    t.regex(second, /^HTTP\/1\.1 200 /);
    t.regex(second, /\r\nconnection: close\r\n/i);
  }
});
