import type { IncomingMessage, Server, ServerResponse } from 'node:http';
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
 * accepting connections, let in-flight requests finish (up to `drainTimeoutMs`), run `onClose`
 * (close the pool), and exit 0.
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
      // server.close() closes only the connections idle at that moment; a keep-alive connection
      // busy with a request would stay open and keep taking requests until the drain timeout
      // cut it. So from now on every response says `Connection: close`, and connections are
      // closed as soon as they fall idle. Nothing of this runs before shutdown.
      server.prependListener('request', (_request: IncomingMessage, response: ServerResponse) => {
        response.shouldKeepAlive = false;
      });
      const drained = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const closeIdle = setInterval(() => server.closeIdleConnections(), 25);
      const timer = setTimeout(() => {
        logger.warn('drain timeout reached; closing remaining connections', {
          drainTimeoutMs: options.drainTimeoutMs,
        });
        server.closeAllConnections();
      }, options.drainTimeoutMs);
      await drained;
      clearTimeout(timer);
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
