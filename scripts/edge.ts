import { Agent, createServer, type RequestListener, request, type Server } from 'node:http';

/** Routes by Host header (port ignored, case-insensitive) to an upstream base URL. */
export interface EdgeOptions {
  routes: Record<string, string>;
  port: number;
  /**
   * Loopback addresses to listen on, all on the same port (default 127.0.0.1). One that this
   * machine lacks (::1 with IPv6 off) is left out with a note, as long as one remains.
   */
  hosts?: string[];
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
): Promise<{ servers: Server[]; port: number; close(): Promise<void> }> => {
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  const routes = new Map(
    Object.entries(options.routes).map(([host, upstream]) => [
      host.toLowerCase(),
      new URL(upstream),
    ]),
  );
  const handle: RequestListener = (incoming, outgoing) => {
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
  };
  const listen = (host: string, port: number) =>
    new Promise<Server>((resolve, reject) => {
      const server = createServer(handle);
      server.keepAliveTimeout = 65_000;
      server.once('error', reject);
      server.listen(port, host, () => resolve(server));
    });
  const [first = '127.0.0.1', ...others] = options.hosts ?? ['127.0.0.1'];
  const servers = [await listen(first, options.port)];
  const address = servers[0]?.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  for (const host of others) {
    try {
      servers.push(await listen(host, port));
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'EADDRNOTAVAIL' && code !== 'EAFNOSUPPORT') throw error;
      console.log(`edge: not listening on ${host} (${code}: the machine has no such address)`);
    }
  }
  return {
    servers,
    port,
    close: () =>
      Promise.all(
        servers.map(
          (server) =>
            new Promise<void>((resolve) => {
              server.close(() => resolve());
              server.closeIdleConnections();
            }),
        ),
      ).then(() => agent.destroy()),
  };
};
