import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { Server as NetServer } from 'node:net';
import { serve } from '@hono/node-server';
import type { Hono } from 'hono';
import { describeError, type Logger } from './logger.ts';
import { problemResponse } from './problem.ts';

/** A running HTTP server and the way to stop it gracefully. */
export interface RunningServer {
  server: Server;
  port: number;
  /** Stops accepting, finishes in-flight requests, then runs the cleanup hooks. */
  shutdown(reason: string): Promise<void>;
}

/**
 * More than one Host header (RFC 9112, 3.2: the server must answer 400). Node keeps only the
 * first in `headers`; `rawHeaders` has them all.
 */
const ambiguousHost = (rawHeaders: string[] | undefined) => {
  if (!rawHeaders) return false;
  let hosts = 0;
  for (let index = 0; index < rawHeaders.length; index += 2)
    if (rawHeaders[index]?.toLowerCase() === 'host') hosts += 1;
  return hosts > 1;
};

/**
 * Serves an app on a port and installs the Knative shutdown contract: on SIGTERM or SIGINT stop
 * accepting connections, answer every request already sent (on a busy or an idle keep-alive
 * connection) with `Connection: close`, let in-flight requests finish (up to `drainTimeoutMs`),
 * run `onClose` (close the pool), and exit 0.
 */
export const startServer = async (options: {
  app: Hono;
  port: number;
  host?: string;
  logger: Logger;
  drainTimeoutMs: number;
  onClose?: () => Promise<void>;
  /** Called when the process should exit; tests pass their own. */
  exit?: (code: number) => void;
}): Promise<RunningServer> => {
  const { app, logger } = options;
  const exit = options.exit ?? ((code: number) => process.exit(code));
  const settleMs = Math.min(1000, options.drainTimeoutMs / 2);
  const server = await new Promise<Server>((resolve) => {
    const created = serve(
      {
        fetch: (request, env) =>
          ambiguousHost(env?.incoming?.rawHeaders)
            ? problemResponse(400, 'a request must carry exactly one Host header')
            : app.fetch(request, env),
        port: options.port,
        hostname: options.host ?? '0.0.0.0',
      },
      () => resolve(created as Server),
    );
  });
  server.keepAliveTimeout = 65_000;
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  logger.info('listening', { port });

  let stopping: Promise<void> | undefined;
  const shutdown = (reason: string) => {
    stopping ??= (async () => {
      logger.info('shutting down: draining in-flight requests', { reason });
      // From now on every response says `Connection: close`, so a busy keep-alive connection
      // closes after its answer instead of taking requests until the drain timeout cuts it.
      server.prependListener('request', (_request: IncomingMessage, response: ServerResponse) => {
        response.shouldKeepAlive = false;
      });
      // http.Server.close() would also close every connection idle at this moment, and a request
      // already on the wire to one of them, not yet read, would be reset unanswered. So only stop
      // listening (net.Server's close: its callback runs once every connection has ended), give
      // such requests `settleMs` to be read and answered, and close idle connections after that.
      const drained = new Promise<void>((resolve) =>
        NetServer.prototype.close.call(server, () => resolve()),
      );
      let closeIdle: NodeJS.Timeout | undefined;
      const settle = setTimeout(() => {
        server.closeIdleConnections();
        closeIdle = setInterval(() => server.closeIdleConnections(), 25);
      }, settleMs);
      const timer = setTimeout(() => {
        logger.warn('drain timeout reached; closing remaining connections', {
          drainTimeoutMs: options.drainTimeoutMs,
        });
        server.closeAllConnections();
      }, options.drainTimeoutMs);
      await drained;
      clearTimeout(timer);
      clearTimeout(settle);
      clearInterval(closeIdle);
      try {
        await options.onClose?.();
      } catch (error) {
        logger.error('cleanup failed', { error: describeError(error) });
      }
      logger.info('stopped');
    })();
    return stopping;
  };
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      void shutdown(signal).then(() => exit(0));
    });
  }
  return { server, port, shutdown };
};
