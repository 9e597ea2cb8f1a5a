import { Agent, createServer, request, type Server } from 'node:http';

/** Routes by Host header (port ignored, case-insensitive) to an upstream base URL. */
export interface EdgeOptions {
  routes: Record<string, string>;
  port: number;
  host?: string;
  /** Upstream response deadline, after which the client gets 504. */
  upstreamTimeoutMs?: number;
}

const hopByHop = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'te',
  'trailer',
]);

const plain = (status: number, text: string) => ({
  status,
  headers: { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' },
  body: `${text}\n`,
});

/**
 * A small local stand-in for Traefik: forwards each request to the upstream chosen by its Host
 * header, keeps the Host header intact, adds X-Forwarded-*, and answers 404 for unknown hosts
 * and 502/504 when the upstream is down or slow.
 * @example await startEdge({ port: 8080, routes: { 'api.secretid': 'http://127.0.0.1:8081' } })
 */
export const startEdge = async (
  options: EdgeOptions,
): Promise<{ server: Server; port: number; close(): Promise<void> }> => {
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  const routes = new Map(
    Object.entries(options.routes).map(([host, upstream]) => [
      host.toLowerCase(),
      new URL(upstream),
    ]),
  );
  const server = createServer((incoming, outgoing) => {
    const hostHeader = (incoming.headers.host ?? '').toLowerCase();
    const hostname = hostHeader.replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1');
    const upstream = routes.get(hostname);
    const reply = ({ status, headers, body }: ReturnType<typeof plain>) => {
      if (outgoing.headersSent) return void outgoing.destroy();
      outgoing.writeHead(status, headers).end(body);
    };
    if (!upstream) {
      return reply(
        // The Host header is not echoed back: what a client sent is not ours to repeat.
        plain(
          404,
          `no site for this Host header; this edge serves ${[...routes.keys()].join(', ')}`,
        ),
      );
    }
    const headers = Object.fromEntries(
      Object.entries(incoming.headers).filter(([name]) => !hopByHop.has(name)),
    );
    headers['x-forwarded-host'] = hostHeader;
    headers['x-forwarded-proto'] = 'http';
    headers['x-forwarded-for'] = incoming.socket.remoteAddress ?? '';
    const forward = request(
      {
        agent,
        protocol: upstream.protocol,
        hostname: upstream.hostname,
        port: upstream.port,
        method: incoming.method,
        path: incoming.url,
        headers,
        timeout: options.upstreamTimeoutMs ?? 30_000,
      },
      (response) => {
        const responseHeaders = Object.fromEntries(
          Object.entries(response.headers).filter(([name]) => !hopByHop.has(name)),
        );
        outgoing.writeHead(response.statusCode ?? 502, responseHeaders);
        response.pipe(outgoing);
      },
    );
    forward.on('timeout', () => {
      forward.destroy();
      reply(plain(504, `upstream for ${hostname} did not answer in time`));
    });
    forward.on('error', (error) => {
      reply(plain(502, `upstream for ${hostname} is unavailable: ${error.message}`));
    });
    incoming.pipe(forward);
  });
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host ?? '127.0.0.1', () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  return {
    server,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
        agent.destroy();
      }),
  };
};
