import { describeError, type Logger } from '@secretid/lib/logger';
import { Counter, Gauge, type Registry } from 'prom-client';
import { type Catalog, type CatalogRows, createCatalog } from './catalog.ts';

/** Thrown when no catalog young enough to serve is held; the API answers 503. */
export class CatalogUnavailableError extends Error {
  override name = 'CatalogUnavailableError';
}

/** Rejects when `work` has not settled within `ms`; the work itself is left to its own deadlines. */
const withDeadline = async <T>(work: Promise<T>, ms: number | undefined): Promise<T> => {
  if (ms === undefined) return work;
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(
      () => reject(new Error(`the names database did not answer within ${ms} ms`)),
      ms,
    );
  });
  try {
    return await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
  }
};

/** Metric names of the catalog, for rules and dashboards. */
export const catalogMetricNames = {
  age: 'secretid_names_catalog_age_seconds',
  maxStaleness: 'secretid_names_catalog_max_staleness_seconds',
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
  /** A reload that takes longer has failed (its queries have their own deadlines too). */
  loadTimeoutMs?: number;
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

  // The bound itself, so an alert compares each instance's age with that instance's own
  // NAMES_MAX_STALENESS_SECONDS instead of a number written into the rules.
  new Gauge({
    name: catalogMetricNames.maxStaleness,
    help: 'Seconds after its last load that the names catalog stops being served (NAMES_MAX_STALENESS_SECONDS).',
    registers: options.registry ? [options.registry] : [],
  }).set(options.maxStalenessMs / 1000);

  const fresh = () => loadedAt !== undefined && now() - loadedAt <= options.maxStalenessMs;

  const refresh = async () => {
    try {
      catalog = createCatalog(await withDeadline(options.load(), options.loadTimeoutMs));
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
