import type { Logger } from '@secretid/lib/logger';
import type { Metrics } from '@secretid/lib/metrics';
import { handleProblems, problemResponse } from '@secretid/lib/problem';
import { Hono } from 'hono';
import { type CatalogStore, CatalogUnavailableError } from './catalog-store.ts';
import { parseNameQuery } from './query.ts';
import { seededRandom, systemRandom } from './random.ts';

/** What the API needs from the outside; tests pass their own. */
export interface ApiDeps {
  catalog: CatalogStore;
  metrics: Metrics;
  logger: Logger;
}

/**
 * The API: `GET /randomName` plus health, readiness and metrics.
 * @example const app = createApp({ catalog, metrics: createMetrics('api'), logger })
 */
export const createApp = ({ catalog, metrics, logger }: ApiDeps) => {
  const app = new Hono();
  app.use(metrics.middleware);
  app.use(async (c, next) => {
    await next();
    c.header('Cache-Control', 'no-store');
  });

  app.get('/randomName', (c) => {
    const query = parseNameQuery(new URL(c.req.url).searchParams);
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
    if (query.count === undefined) return c.json(current.draw(options));
    return c.json({ names: Array.from({ length: query.count }, () => current.draw(options)) });
  });

  app.get('/healthz', (c) => c.json({ status: 'ok' }));

  app.get('/readyz', (c) => {
    const status = catalog.status();
    return c.json(
      {
        status: status.ready ? 'ready' : 'unavailable',
        catalogAgeSeconds: status.ageSeconds,
        error: status.lastError,
      },
      status.ready ? 200 : 503,
    );
  });

  app.get('/metrics', async (c) =>
    c.body(await metrics.registry.metrics(), 200, { 'Content-Type': metrics.registry.contentType }),
  );

  handleProblems(app, logger);
  return app;
};
