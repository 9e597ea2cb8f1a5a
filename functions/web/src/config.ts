import { integer, type ListenHost, listenHosts, oneOf, url } from '@secretid/lib/config';
import { type LogLevel, logLevels } from '@secretid/lib/logger';

/** Everything the web function reads from its environment. */
export interface WebConfig {
  /** `PORT`: where to listen (Knative sets it); 0 picks a free port. */
  port: number;
  /** `API_URL`: base URL of the API function, http or https. */
  apiUrl: URL;
  /** `API_TIMEOUT_MS`: deadline of one API attempt. */
  apiTimeoutMs: number;
  /** `API_CONNECTIONS`: most open connections from one instance to the API. */
  apiConnections: number;
  /** `API_RETRIES`: extra attempts after a connection error or 502/503/504. */
  apiRetries: number;
  /** `LOG_LEVEL`: debug, info, warn or error. */
  logLevel: LogLevel;
  /** `SHUTDOWN_DRAIN_SECONDS`: how long in-flight requests may finish after SIGTERM. */
  shutdownDrainSeconds: number;
  /** `LISTEN_HOST`: the address to listen on (all interfaces by default, as a pod needs). */
  listenHost: ListenHost;
}

/**
 * Reads and validates the web function's configuration; throws `ConfigError` naming the variable.
 * @example readConfig({ API_URL: 'http://api.secretid' }).apiTimeoutMs // 2000
 */
export const readConfig = (env: Record<string, string | undefined>): WebConfig => ({
  port: integer(env, 'PORT', { min: 0, max: 65535, fallback: 8080 }),
  apiUrl: url(env, 'API_URL', ['http:', 'https:']),
  apiTimeoutMs: integer(env, 'API_TIMEOUT_MS', { min: 50, max: 60_000, fallback: 2000 }),
  apiConnections: integer(env, 'API_CONNECTIONS', { min: 1, max: 1024, fallback: 16 }),
  apiRetries: integer(env, 'API_RETRIES', { min: 0, max: 5, fallback: 2 }),
  logLevel: oneOf(env, 'LOG_LEVEL', logLevels, 'info'),
  shutdownDrainSeconds: integer(env, 'SHUTDOWN_DRAIN_SECONDS', { min: 0, max: 3600, fallback: 20 }),
  listenHost: oneOf(env, 'LISTEN_HOST', listenHosts, '0.0.0.0'),
});
