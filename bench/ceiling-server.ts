/**
 * The throughput ceiling: a bare @hono/node-server fetch handler (no router, no middleware, no
 * database) that answers every request with the same small JSON, shaped like a /randomName
 * answer. Whatever the API reaches is measured against this on the same machine and load.
 *
 * bench/run.ts bundles it with esbuild like the functions (so cold start and RSS compare like with
 * like) and runs the bundle; to try it by hand: PORT=8099 node bench/ceiling-server.ts
 */
import { serve } from '@hono/node-server';

const port = Number(process.env.PORT ?? 8099);
const body = JSON.stringify({
  firstName: 'Ada',
  lastName: 'Lovelace',
  fullName: 'Ada Lovelace',
  gender: 'female',
});
const headers = {
  'Content-Type': 'application/json; charset=UTF-8',
  'Cache-Control': 'no-store',
};

const server = serve(
  {
    fetch: () => new Response(body, { status: 200, headers }),
    port,
    hostname: '127.0.0.1',
  },
  (info) => process.stdout.write(`ceiling listening on ${info.port}\n`),
);
// Same keep-alive as the functions (lib/serve.ts), so connection reuse matches.
if ('keepAliveTimeout' in server) server.keepAliveTimeout = 65_000;

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    server.close(() => process.exit(0));
    if ('closeAllConnections' in server) server.closeAllConnections();
  });
}
