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
