import { type Kysely, sql } from 'kysely';
import { tables } from './schema.ts';

/** The read-only role's default name; the API connects as this role. */
export const defaultReaderRole = 'secretid_reader';

/**
 * Lets `role` read the name tables and nothing else. The tables belong to the role that ran
 * the migrations (the owner), so only the owner or a superuser can grant this.
 */
export const grantReadAccess = async (db: Kysely<unknown>, role: string) => {
  const exists = await sql<{ found: boolean }>`
    SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = ${role}) AS found`.execute(db);
  if (!exists.rows[0]?.found) {
    throw new Error(
      `role "${role}" does not exist: create it first (the chart's init script does) or set READER_ROLE`,
    );
  }
  await sql`GRANT USAGE ON SCHEMA public TO ${sql.id(role)}`.execute(db);
  await sql`REVOKE ALL ON ${sql.id(tables.firstNames)}, ${sql.id(tables.lastNames)}, name_sources FROM ${sql.id(role)}`.execute(
    db,
  );
  await sql`GRANT SELECT ON ${sql.id(tables.firstNames)}, ${sql.id(tables.lastNames)}, name_sources TO ${sql.id(role)}`.execute(
    db,
  );
};

/**
 * Creates a login role, or resets its password if it exists. Needs a superuser or CREATEROLE;
 * used by the test harness and the local run (the chart creates roles in its init script).
 */
export const ensureLoginRole = async (db: Kysely<unknown>, role: string, password: string) => {
  const exists = await sql<{ found: boolean }>`
    SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = ${role}) AS found`.execute(db);
  const verb = exists.rows[0]?.found ? sql`ALTER ROLE` : sql`CREATE ROLE`;
  await sql`${verb} ${sql.id(role)} LOGIN PASSWORD ${sql.lit(password)}`.execute(db);
};
