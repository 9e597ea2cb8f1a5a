/**
 * The API process: configuration from the environment, the names catalog over a small pool,
 * and the HTTP server with graceful shutdown.
 */
import { ConfigError, integer, listenHosts, oneOf, url } from '@secretid/lib/config';
import { createDatabase } from '@secretid/lib/db';
import { createLogger, logLevels } from '@secretid/lib/logger';
import { createMetrics } from '@secretid/lib/metrics';
import { startServer } from '@secretid/lib/serve';
import { createApp } from './app.ts';
import { createCatalogStore } from './catalog-store.ts';
import { loadCatalogRows } from './names-repository.ts';

const readConfig = (env: NodeJS.ProcessEnv) => ({
  port: integer(env, 'PORT', { min: 1, max: 65535, fallback: 8080 }),
  listenHost: oneOf(env, 'LISTEN_HOST', listenHosts, '0.0.0.0'),
  databaseUrl: url(env, 'DATABASE_URL', ['postgres:', 'postgresql:']).toString(),
  poolMax: integer(env, 'DB_POOL_MAX', { min: 1, max: 20, fallback: 2 }),
  connectTimeoutMs: integer(env, 'DB_CONNECT_TIMEOUT_MS', {
    min: 100,
    max: 60_000,
    fallback: 2000,
  }),
  refreshSeconds: integer(env, 'NAMES_REFRESH_SECONDS', { min: 1, max: 3600, fallback: 30 }),
  maxStalenessSeconds: integer(env, 'NAMES_MAX_STALENESS_SECONDS', {
    min: 1,
    max: 86_400,
    fallback: 90,
  }),
  logLevel: oneOf(env, 'LOG_LEVEL', logLevels, 'info'),
  drainSeconds: integer(env, 'SHUTDOWN_DRAIN_SECONDS', { min: 1, max: 300, fallback: 20 }),
});

let config: ReturnType<typeof readConfig>;
try {
  config = readConfig(process.env);
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  process.stderr.write(`invalid configuration: ${error.message}\n`);
  process.exit(2);
}

const logger = createLogger('api', config.logLevel);
const metrics = createMetrics('api');
// Two short queries load the catalog; a database or network that answers nothing costs at most
// this (plus the client's margin) before the connection is replaced and the reload retried.
const queryDeadlineMs = 5000;
const db = createDatabase({
  url: config.databaseUrl,
  poolMax: config.poolMax,
  connectTimeoutMs: config.connectTimeoutMs,
  statementTimeoutMs: queryDeadlineMs,
  applicationName: 'secretid-api',
  onStuckConnection: (error) =>
    logger.warn('database connection replaced: a query got no answer in time', {
      error: error.message,
      deadlineMs: queryDeadlineMs,
    }),
});
const catalog = createCatalogStore({
  load: () => loadCatalogRows(db),
  refreshMs: config.refreshSeconds * 1000,
  retryMs: Math.min(1000, config.refreshSeconds * 1000),
  maxStalenessMs: config.maxStalenessSeconds * 1000,
  loadTimeoutMs: queryDeadlineMs + config.connectTimeoutMs + 1000,
  logger,
  registry: metrics.registry,
});

const server = await startServer({
  // Knative sets K_REVISION in every revision's containers.
  app: createApp({ catalog, metrics, logger, revision: process.env.K_REVISION || undefined }),
  port: config.port,
  host: config.listenHost,
  logger,
  drainTimeoutMs: config.drainSeconds * 1000,
  onClose: async () => {
    catalog.stop();
    await db.destroy();
  },
});
// Listen first so liveness answers at once; readiness follows the first catalog load.
await catalog.start();
logger.info('names catalog', { ...catalog.status(), port: server.port });
