import { describeError, type Logger } from '@secretid/lib/logger';
import { Counter, Gauge, type Registry } from 'prom-client';
import { type Catalog, type CatalogRows, createCatalog } from './catalog.ts';

/** Thrown when no catalog young enough to serve is held; the API answers 503. */
export class CatalogUnavailableError extends Error {
  override name = 'CatalogUnavailableError';
}

/** Metric names of the catalog, for rules and dashboards. */
export const catalogMetricNames = {
  age: 'secretid_names_catalog_age_seconds',
  refreshFailures: 'secretid_names_refresh_failures_total',
} as const;

/** Holds the in-memory copy of the name tables and keeps it fresh. */
export interface CatalogStore {
  /** The catalog, if it was loaded less than `maxStalenessMs` ago; otherwise throws. */
  current(): Catalog;
  /** Ready means `current()` would succeed. */
  status(): { ready: boolean; ageSeconds: number | null; lastError: string | null };
  /** Loads once (never throws), then refreshes in the background until `stop()`. */
  start(): Promise<void>;
  stop(): void;
}

/**
 * The database stays the source of truth: the copy is reloaded every `refreshMs`, retried every
 * `retryMs` after a failure, and never served once older than `maxStalenessMs`. So a change to
 * the tables shows within `refreshMs`, and a lost database turns into fast 503s after at most
 * `maxStalenessMs` instead of hung requests.
 */
export const createCatalogStore = (options: {
  load: () => Promise<CatalogRows>;
  refreshMs: number;
  retryMs: number;
  maxStalenessMs: number;
  logger: Logger;
  registry?: Registry;
  now?: () => number;
}): CatalogStore => {
  const now = options.now ?? Date.now;
  let catalog: Catalog | undefined;
  let loadedAt: number | undefined;
  let lastError: string | null = null;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;

  const failures = new Counter({
    name: catalogMetricNames.refreshFailures,
    help: 'Failed reloads of the names catalog from the database.',
    registers: options.registry ? [options.registry] : [],
  });
  new Gauge({
    name: catalogMetricNames.age,
    help: 'Seconds since the names catalog was last loaded from the database (-1: never).',
    registers: options.registry ? [options.registry] : [],
    collect() {
      this.set(loadedAt === undefined ? -1 : (now() - loadedAt) / 1000);
    },
  });

  const fresh = () => loadedAt !== undefined && now() - loadedAt <= options.maxStalenessMs;

  const refresh = async () => {
    try {
      catalog = createCatalog(await options.load());
      const recovered = lastError !== null;
      loadedAt = now();
      lastError = null;
      if (recovered) options.logger.info('names catalog reloaded; serving again');
      return true;
    } catch (error) {
      lastError = describeError(error);
      failures.inc();
      options.logger.warn('names catalog reload failed', { error: lastError, stale: !fresh() });
      return false;
    }
  };

  const schedule = (ok: boolean) => {
    if (stopped) return;
    timer = setTimeout(
      async () => schedule(await refresh()),
      ok ? options.refreshMs : options.retryMs,
    );
    timer.unref();
  };

  return {
    current() {
      if (!catalog || !fresh()) {
        // For clients: what they need, never the driver's error (addresses, role names); the
        // cause is in the log ("names catalog reload failed") and in status() for the process.
        throw new CatalogUnavailableError(
          catalog
            ? 'the names database is unavailable and the names held are too old to serve'
            : 'the names database is unavailable and no names have been loaded yet',
        );
      }
      return catalog;
    },
    status: () => ({
      ready: catalog !== undefined && fresh(),
      ageSeconds: loadedAt === undefined ? null : (now() - loadedAt) / 1000,
      lastError,
    }),
    async start() {
      stopped = false;
      schedule(await refresh());
    },
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
};
