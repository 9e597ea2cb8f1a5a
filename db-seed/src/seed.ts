import { readFileSync } from 'node:fs';
import { type Kysely, sql } from 'kysely';
import {
  type FirstNameRow,
  type LastNameRow,
  parseFirstNamesCsv,
  parseLastNamesCsv,
} from './names-csv.ts';
import type { NamesDatabase } from './schema.ts';
import { dataFiles, sources } from './sources.ts';

/** The names the seeder writes. */
export interface NamesData {
  firstNames: FirstNameRow[];
  lastNames: LastNameRow[];
}

/** Reads and validates the shipped CSV files. */
export const readNamesData = (): NamesData => ({
  firstNames: parseFirstNamesCsv(readFileSync(dataFiles.firstNames, 'utf8'), dataFiles.firstNames),
  lastNames: parseLastNamesCsv(readFileSync(dataFiles.lastNames, 'utf8'), dataFiles.lastNames),
});

/** What one seeding run changed. */
export interface SeedReport {
  firstNames: { written: number; removed: number };
  lastNames: { written: number; removed: number };
}

/**
 * Makes the name tables equal to `data` in one transaction: upserts every row and removes rows
 * that are no longer in the data. Rerunning it adds nothing and raises nothing.
 */
export const seedNames = async (
  db: Kysely<NamesDatabase>,
  data: NamesData = readNamesData(),
): Promise<SeedReport> =>
  db.transaction().execute(async (trx) => {
    const first = await trx
      .insertInto('first_names')
      .values(data.firstNames)
      .onConflict((conflict) =>
        conflict.columns(['sex', 'name']).doUpdateSet((eb) => ({
          rank: eb.ref('excluded.rank'),
          count: eb.ref('excluded.count'),
        })),
      )
      .executeTakeFirst();
    const firstRemoved = await trx
      .deleteFrom('first_names')
      .where(
        sql<boolean>`(sex, name) NOT IN (SELECT * FROM unnest(${sql.val(data.firstNames.map((row) => row.sex))}::text[], ${sql.val(data.firstNames.map((row) => row.name))}::text[]))`,
      )
      .executeTakeFirst();
    const last = await trx
      .insertInto('last_names')
      .values(data.lastNames)
      .onConflict((conflict) =>
        conflict.column('name').doUpdateSet((eb) => ({
          rank: eb.ref('excluded.rank'),
          count: eb.ref('excluded.count'),
        })),
      )
      .executeTakeFirst();
    const lastRemoved = await trx
      .deleteFrom('last_names')
      .where(
        'name',
        'not in',
        data.lastNames.map((row) => row.name),
      )
      .executeTakeFirst();
    for (const [dataSet, description] of [
      ['first_names', `${sources.firstNames.publisher}, ${sources.firstNames.year}`],
      ['last_names', sources.lastNames.publisher],
    ] as const) {
      await trx
        .insertInto('name_sources')
        .values({ data_set: dataSet, description })
        .onConflict((conflict) =>
          conflict.column('data_set').doUpdateSet({ description, seeded_at: sql`now()` }),
        )
        .execute();
    }
    return {
      firstNames: {
        written: Number(first.numInsertedOrUpdatedRows ?? 0),
        removed: Number(firstRemoved.numDeletedRows),
      },
      lastNames: {
        written: Number(last.numInsertedOrUpdatedRows ?? 0),
        removed: Number(lastRemoved.numDeletedRows),
      },
    };
  });
