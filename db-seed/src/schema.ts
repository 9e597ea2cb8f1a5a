import type { Generated } from 'kysely';

/** Table names, referenced by migrations, grants and queries. */
export const tables = { firstNames: 'first_names', lastNames: 'last_names' } as const;

/** The names database as kysely sees it. */
export interface NamesDatabase {
  first_names: {
    sex: 'F' | 'M';
    name: string;
    rank: number;
    count: number;
  };
  last_names: {
    name: string;
    rank: number;
    count: number;
  };
  name_sources: {
    id: Generated<number>;
    data_set: string;
    description: string;
    seeded_at: Generated<Date>;
  };
}
