import type { NamesDatabase } from '@secretid/db-seed/schema';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';

/** Connection settings that keep a request from ever waiting long on the database. */
export interface DatabaseOptions {
  url: string;
  poolMax: number;
  connectTimeoutMs: number;
  statementTimeoutMs: number;
  applicationName: string;
}

/**
 * Creates a kysely instance over a capped pg pool.
 * @example const db = createDatabase({ url, poolMax: 2, connectTimeoutMs: 2000, ... })
 */
export const createDatabase = (options: DatabaseOptions) => {
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.poolMax,
    connectionTimeoutMillis: options.connectTimeoutMs,
    idleTimeoutMillis: 30_000,
    statement_timeout: options.statementTimeoutMs,
    application_name: options.applicationName,
  });
  // An idle client whose server went away emits 'error'; the next query reconnects.
  pool.on('error', () => {});
  return new Kysely<NamesDatabase>({ dialect: new PostgresDialect({ pool }) });
};
