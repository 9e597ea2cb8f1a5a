import { readNamesData } from '@secretid/db-seed/seed';
import type { CatalogRows } from './catalog.ts';

/** The shipped names data in the shape the database returns, for tests without a database. */
export const shippedCatalogRows = (): CatalogRows => {
  const data = readNamesData();
  return {
    firstNames: data.firstNames.map(({ sex, name, count }) => ({ sex, name, count })),
    lastNames: data.lastNames.map(({ name, count }) => ({ name, count })),
  };
};
