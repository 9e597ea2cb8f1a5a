import type { NamesDatabase } from '@secretid/db-seed/schema';
import type { Kysely } from 'kysely';
import type { CatalogRows } from './catalog.ts';

/** Reads both name tables (about 2,000 short rows) in rank order. */
export const loadCatalogRows = async (db: Kysely<NamesDatabase>): Promise<CatalogRows> => {
  const [firstNames, lastNames] = await Promise.all([
    db
      .selectFrom('first_names')
      .select(['sex', 'name', 'count'])
      .orderBy('sex')
      .orderBy('rank')
      .execute(),
    db.selectFrom('last_names').select(['name', 'count']).orderBy('rank').execute(),
  ]);
  return { firstNames, lastNames };
};
