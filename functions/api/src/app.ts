import type { Logger } from '@secretid/lib/logger';
import type { Metrics } from '@secretid/lib/metrics';
import { serveOpenApi } from '@secretid/lib/openapi';
import { handleProblems, problemResponse, refuseOtherMethods } from '@secretid/lib/problem';
import { Hono } from 'hono';
import openapi from '../openapi.json' with { type: 'json' };
import { type CatalogStore, CatalogUnavailableError } from './catalog-store.ts';
import { type NameQuery, parseNameQuery } from './query.ts';
import { seededRandom, systemRandom } from './random.ts';

const defaultQuery: NameQuery = Object.freeze({ weighted: false });

/** The response header naming the Knative revision that answered (K_REVISION). */
export const revisionHeader = 'Secretid-Revision';

/** What the API needs from the outside; tests pass their own. */
export interface ApiDeps {
  catalog: CatalogStore;
  metrics: Metrics;
  logger: Logger;
  /**
   * The Knative revision serving (its K_REVISION), sent in `Secretid-Revision` on every JSON
   * answer so that a traffic split can be seen from the client; absent outside Knative.
   */
  revision?: string;
}

/**
 * The API: `GET /randomName` plus health, readiness and metrics.
 * @example const app = createApp({ catalog, metrics: createMetrics('api'), logger })
 */
export const createApp = ({ catalog, metrics, logger, revision }: ApiDeps) => {
  const app = new Hono();
  // Every answer is personal and random: nothing may be cached. One constant headers object
  // lets @hono/node-server write the response on its fast path.
  const jsonHeaders: Record<string, string> = {
    'Content-Type': 'application/json',
    'Cache-Control': 'no-store',
    ...(revision ? { [revisionHeader]: revision } : {}),
  };
  const json = (value: unknown, status = 200) =>
    new Response(JSON.stringify(value), { status, headers: jsonHeaders });

  app.get('/randomName', (c) => {
    const url = c.req.url;
    const queryStart = url.indexOf('?');
    const query =
      queryStart === -1
        ? defaultQuery
        : parseNameQuery(new URLSearchParams(url.slice(queryStart + 1)));
    let current: ReturnType<CatalogStore['current']>;
    try {
      current = catalog.current();
    } catch (error) {
      if (error instanceof CatalogUnavailableError) {
        return problemResponse(503, error.message, c.req.path, { 'Retry-After': '1' });
      }
      throw error;
    }
    const random = query.seed === undefined ? systemRandom : seededRandom(query.seed);
    const options = {
      random,
      weighted: query.weighted,
      ...(query.gender ? { gender: query.gender } : {}),
    };
    if (query.count === undefined) return json(current.draw(options));
    return json({ names: Array.from({ length: query.count }, () => current.draw(options)) });
  });

  app.get('/healthz', () => json({ status: 'ok' }));

  serveOpenApi(app, openapi);

  app.get('/readyz', () => {
    const status = catalog.status();
    return json(
      {
        status: status.ready ? 'ready' : 'unavailable',
        catalogAgeSeconds: status.ageSeconds,
        // Public like every path: a reason, not the database error (that is in the log).
        reason: status.ready
          ? null
          : status.ageSeconds === null
            ? 'names not loaded yet'
            : 'names too old: the database is unavailable',
      },
      status.ready ? 200 : 503,
    );
  });

  app.get(
    '/metrics',
    async () =>
      new Response(await metrics.registry.metrics(), {
        headers: { 'Content-Type': metrics.registry.contentType, 'Cache-Control': 'no-store' },
      }),
  );

  refuseOtherMethods(app);
  handleProblems(app, logger);
  metrics.instrument(app);
  return app;
};
