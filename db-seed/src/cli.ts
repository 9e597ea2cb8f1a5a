/**
 * The seeder: waits for the database, applies migrations, writes the names, grants the reader
 * role read access. Safe to rerun (the chart runs it on every install and upgrade).
 *
 * Environment: DATABASE_URL (owner role, required), READER_ROLE (default secretid_reader),
 * SEED_WAIT_SECONDS (default 60).
 */
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { migrateToLatest } from './migrations.ts';
import { defaultReaderRole, grantReadAccess } from './roles.ts';
import type { NamesDatabase } from './schema.ts';
import { readNamesData, seedNames } from './seed.ts';

const fail = (message: string): never => {
  console.error(`seed failed: ${message}`);
  process.exit(1);
};

const databaseUrl = process.env.DATABASE_URL?.trim();
if (!databaseUrl) fail('DATABASE_URL is required (a postgres:// URL for the owner role)');
const readerRole = process.env.READER_ROLE?.trim() || defaultReaderRole;
const waitSeconds = Number(process.env.SEED_WAIT_SECONDS ?? '60');
if (!Number.isInteger(waitSeconds) || waitSeconds < 0) {
  fail(
    `SEED_WAIT_SECONDS must be a whole number of seconds, got "${process.env.SEED_WAIT_SECONDS}"`,
  );
}

const data = (() => {
  try {
    return readNamesData();
  } catch (error) {
    return fail(`the names data is invalid: ${(error as Error).message}`);
  }
})();

const pool = new pg.Pool({ connectionString: databaseUrl, max: 1, connectionTimeoutMillis: 3000 });
pool.on('error', () => {});
const db = new Kysely<NamesDatabase>({ dialect: new PostgresDialect({ pool }) });

try {
  const started = Date.now();
  console.log(`[1/4] waiting for the database (up to ${waitSeconds}s)`);
  for (let attempt = 1; ; attempt++) {
    try {
      await sql`SELECT 1`.execute(db);
      break;
    } catch (error) {
      if (Date.now() - started > waitSeconds * 1000) {
        throw new Error(
          `database not reachable after ${waitSeconds}s: ${(error as Error).message}`,
        );
      }
      console.log(`      not yet (attempt ${attempt}): ${(error as Error).message}`);
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
  console.log('[2/4] applying migrations');
  const applied = await migrateToLatest(db as Kysely<unknown>);
  console.log(
    `      ${applied.length === 0 ? 'already up to date' : `applied ${applied.join(', ')}`}`,
  );
  console.log(
    `[3/4] seeding ${data.firstNames.length} first names and ${data.lastNames.length} surnames`,
  );
  const report = await seedNames(db, data);
  console.log(
    `      first names: ${report.firstNames.written} written, ${report.firstNames.removed} removed; surnames: ${report.lastNames.written} written, ${report.lastNames.removed} removed`,
  );
  console.log(`[4/4] granting read access to role ${readerRole}`);
  await grantReadAccess(db as Kysely<unknown>, readerRole);
  console.log('seed complete');
  await db.destroy();
} catch (error) {
  await db.destroy().catch(() => {});
  fail((error as Error).message);
}
