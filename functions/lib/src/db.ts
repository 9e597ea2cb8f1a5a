import type { NamesDatabase } from '@secretid/db-seed/schema';
import { Kysely, PostgresDialect, type PostgresPool, type PostgresPoolClient } from 'kysely';
import pg from 'pg';

/** Connection settings that keep a request from ever waiting long on the database. */
export interface DatabaseOptions {
  url: string;
  poolMax: number;
  connectTimeoutMs: number;
  /** Deadline of one query, on the server (statement_timeout) and in the client. */
  statementTimeoutMs: number;
  applicationName: string;
  /** Told about each connection thrown away because a query on it missed its deadline. */
  onStuckConnection?: (error: Error) => void;
}

/** pg's error for a query that got no answer within `query_timeout`. */
const isClientDeadline = (error: unknown) =>
  error instanceof Error && error.message === 'Query read timeout';

/**
 * A pool whose clients are thrown away, socket and all, when a query on them missed its client
 * deadline. pg answers such a query with an error but keeps the connection, whose next query
 * would queue behind the lost one forever (a frozen backend, a black-holed network), and kysely
 * hands the client back to the pool as healthy.
 */
const replacingStuckClients = (pool: pg.Pool, onStuck?: (error: Error) => void): PostgresPool => ({
  async connect() {
    const client = await pool.connect();
    let stuck: Error | undefined;
    const guarded: PostgresPoolClient = {
      query: ((...args: Parameters<pg.PoolClient['query']>) => {
        const result = (client.query as (...a: unknown[]) => unknown)(...args);
        if (result instanceof Promise) {
          result.catch((error: unknown) => {
            if (isClientDeadline(error)) stuck = error as Error;
          });
        }
        return result;
      }) as PostgresPoolClient['query'],
      release() {
        if (!stuck) return client.release();
        onStuck?.(stuck);
        // release(error) removes the client from the pool; its polite end() would wait on the
        // stuck socket, so the socket is destroyed too.
        (
          client as unknown as { connection?: { stream?: { destroy(): void } } }
        ).connection?.stream?.destroy();
        client.release(stuck);
      },
    };
    return guarded;
  },
  end: () => pool.end(),
  options: pool.options,
});

/**
 * Creates a kysely instance over a capped pg pool. Every query has a deadline on both sides:
 * the server cancels it (statement_timeout) and ends a session idle inside a transaction
 * (idle_in_transaction_session_timeout); the client stops waiting shortly after (query_timeout,
 * for a server or network that answers nothing at all) and replaces that connection.
 * @example const db = createDatabase({ url, poolMax: 2, connectTimeoutMs: 2000, ... })
 */
export const createDatabase = (options: DatabaseOptions) => {
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.poolMax,
    connectionTimeoutMillis: options.connectTimeoutMs,
    idleTimeoutMillis: 30_000,
    keepAlive: true,
    statement_timeout: options.statementTimeoutMs,
    idle_in_transaction_session_timeout: options.statementTimeoutMs,
    // A little later than the server's own cancel, so a live server reports its own error.
    query_timeout: options.statementTimeoutMs + 500,
    application_name: options.applicationName,
  });
  // An idle client whose server went away emits 'error'; the next query reconnects.
  pool.on('error', () => {});
  return new Kysely<NamesDatabase>({
    dialect: new PostgresDialect({ pool: replacingStuckClients(pool, options.onStuckConnection) }),
  });
};
