import { randomBytes } from 'node:crypto';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { migrateToLatest } from '../../db-seed/src/migrations.ts';
import { defaultReaderRole, ensureLoginRole, grantReadAccess } from '../../db-seed/src/roles.ts';
import type { NamesDatabase } from '../../db-seed/src/schema.ts';
import { seedNames } from '../../db-seed/src/seed.ts';
import type { TestPostgres } from './postgres.ts';

/** Opens a kysely connection for a test; destroy it when done. */
export const connect = <Schema = NamesDatabase>(url: string) => {
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  pool.on('error', () => {});
  return new Kysely<Schema>({ dialect: new PostgresDialect({ pool }) });
};

/** URLs of a seeded names database: the owner's and the read-only role's. */
export interface NamesDatabaseUrls {
  ownerUrl: string;
  readerUrl: string;
  database: string;
}

/**
 * Creates the owner and reader roles and a database owned by the owner, then migrates, seeds
 * and grants exactly as the seeder does.
 */
export const createNamesDatabase = async (
  server: TestPostgres,
  database = 'secretid',
): Promise<NamesDatabaseUrls> => {
  const owner = 'secretid_owner';
  const ownerPassword = randomBytes(12).toString('hex');
  const readerPassword = randomBytes(12).toString('hex');
  const admin = connect<unknown>(server.url());
  try {
    await ensureLoginRole(admin, owner, ownerPassword);
    await ensureLoginRole(admin, defaultReaderRole, readerPassword);
  } finally {
    await admin.destroy();
  }
  server.psql(`CREATE DATABASE ${database} OWNER ${owner}`);
  server.psql(
    `REVOKE ALL ON SCHEMA public FROM PUBLIC; ALTER SCHEMA public OWNER TO ${owner}`,
    database,
  );
  const ownerUrl = server.url(database, owner, ownerPassword);
  const db = connect(ownerUrl);
  try {
    await migrateToLatest(db as Kysely<unknown>);
    await seedNames(db);
    await grantReadAccess(db as Kysely<unknown>, defaultReaderRole);
  } finally {
    await db.destroy();
  }
  return { ownerUrl, readerUrl: server.url(database, defaultReaderRole, readerPassword), database };
};
