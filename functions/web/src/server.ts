import { ConfigError } from '@secretid/lib/config';
import { createLogger } from '@secretid/lib/logger';
import { createMetrics } from '@secretid/lib/metrics';
import { startServer } from '@secretid/lib/serve';
import { createApiClient } from './api-client.ts';
import { createApp } from './app.ts';
import { readConfig, type WebConfig } from './config.ts';

let config: WebConfig;
try {
  config = readConfig(process.env);
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  process.stderr.write(`invalid configuration: ${error.message}\n`);
  process.exit(2);
}

const logger = createLogger('web', config.logLevel);
const api = createApiClient({
  baseUrl: config.apiUrl,
  connections: config.apiConnections,
  timeoutMs: config.apiTimeoutMs,
  retries: config.apiRetries,
  logger,
});
await startServer({
  app: createApp({ api, metrics: createMetrics('web'), logger }),
  port: config.port,
  host: config.listenHost,
  logger,
  drainTimeoutMs: config.shutdownDrainSeconds * 1000,
  onClose: () => api.close(),
});
logger.info('calling the identity API', {
  apiUrl: config.apiUrl.origin,
  timeoutMs: config.apiTimeoutMs,
  retries: config.apiRetries,
  deadlineMs: api.deadlineMs,
});
