import { type Kysely, sql } from 'kysely';
import { type Migration, type MigrationProvider, Migrator } from 'kysely/migration';

/**
 * Schema migrations, in order. They live in code (not files found at run time) so the bundled
 * seeder carries them. Never edit one that has shipped: add the next.
 */
export const migrations: Record<string, Migration> = {
  '2026-11-24-001-name-tables': {
    async up(db: Kysely<unknown>) {
      await sql`
        CREATE TABLE first_names (
          sex char(1) NOT NULL CHECK (sex IN ('F', 'M')),
          name text NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
          rank integer NOT NULL CHECK (rank > 0),
          count integer NOT NULL CHECK (count > 0),
          PRIMARY KEY (sex, name),
          CONSTRAINT first_names_rank_unique UNIQUE (sex, rank) DEFERRABLE INITIALLY DEFERRED
        )`.execute(db);
      await sql`
        CREATE TABLE last_names (
          name text PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 64),
          rank integer NOT NULL CHECK (rank > 0),
          count integer NOT NULL CHECK (count > 0),
          CONSTRAINT last_names_rank_unique UNIQUE (rank) DEFERRABLE INITIALLY DEFERRED
        )`.execute(db);
      await sql`
        CREATE TABLE name_sources (
          id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
          data_set text NOT NULL UNIQUE,
          description text NOT NULL,
          seeded_at timestamptz NOT NULL DEFAULT now()
        )`.execute(db);
    },
    async down(db: Kysely<unknown>) {
      await sql`DROP TABLE name_sources, last_names, first_names`.execute(db);
    },
  },
};

const provider: MigrationProvider = { getMigrations: async () => migrations };

/** Applies every pending migration; throws with the failing migration's name and cause. */
export const migrateToLatest = async (db: Kysely<unknown>) => {
  const migrator = new Migrator({ db, provider });
  const { error, results } = await migrator.migrateToLatest();
  const failed = results?.find((result) => result.status === 'Error');
  if (error) {
    const cause = error instanceof Error ? error.message : String(error);
    throw new Error(`migration ${failed?.migrationName ?? '(before any)'} failed: ${cause}`);
  }
  return (results ?? []).map((result) => result.migrationName);
};
