import type { Random } from './random.ts';

export const genders = ['female', 'male'] as const;
export type Gender = (typeof genders)[number];

/** One identity, as the API returns it. */
export interface Identity {
  firstName: string;
  lastName: string;
  fullName: string;
  gender: Gender;
}

interface Entry {
  name: string;
  count: number;
}

interface FirstEntry extends Entry {
  gender: Gender;
}

/** A list that can be sampled uniformly (by index) or by popularity (by cumulative count). */
interface Pool<T extends Entry> {
  entries: T[];
  cumulative: number[];
  total: number;
}

const poolOf = <T extends Entry>(entries: T[]): Pool<T> => {
  let total = 0;
  const cumulative = entries.map((entry) => {
    total += entry.count;
    return total;
  });
  return { entries, cumulative, total };
};

const pick = <T extends Entry>(pool: Pool<T>, random: Random, weighted: boolean): T => {
  if (!weighted) return pool.entries[random.int(pool.entries.length)] as T;
  // Smallest index whose cumulative count exceeds a uniform draw in [0, total).
  const target = random.int(pool.total);
  let low = 0;
  let high = pool.cumulative.length - 1;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if ((pool.cumulative[middle] as number) > target) high = middle;
    else low = middle + 1;
  }
  return pool.entries[low] as T;
};

/** Rows as they come from the database. */
export interface CatalogRows {
  firstNames: { sex: 'F' | 'M'; name: string; count: number }[];
  lastNames: { name: string; count: number }[];
}

/** Options of one draw. */
export interface DrawOptions {
  gender?: Gender;
  weighted: boolean;
  random: Random;
}

/** An immutable in-memory copy of the name tables. */
export interface Catalog {
  size: { firstNames: number; lastNames: number };
  draw(options: DrawOptions): Identity;
}

/**
 * Builds a catalog. Uniform sampling gives every row the same chance, including the last one;
 * weighted sampling follows the stored counts.
 */
export const createCatalog = (rows: CatalogRows): Catalog => {
  if (rows.firstNames.length === 0 || rows.lastNames.length === 0) {
    throw new Error('the name tables are empty: run the seeder (db-seed)');
  }
  const firstEntries: FirstEntry[] = rows.firstNames.map((row) => ({
    name: row.name,
    count: row.count,
    gender: row.sex === 'F' ? 'female' : 'male',
  }));
  const firstPools = {
    any: poolOf(firstEntries),
    female: poolOf(firstEntries.filter((entry) => entry.gender === 'female')),
    male: poolOf(firstEntries.filter((entry) => entry.gender === 'male')),
  };
  const lastPool = poolOf(rows.lastNames.map((row) => ({ name: row.name, count: row.count })));
  return {
    size: { firstNames: firstEntries.length, lastNames: lastPool.entries.length },
    draw({ gender, weighted, random }) {
      const pool = firstPools[gender ?? 'any'];
      if (pool.entries.length === 0) throw new Error(`no ${gender} first names are stored`);
      const first = pick(pool, random, weighted);
      const last = pick(lastPool, random, weighted);
      return {
        firstName: first.name,
        lastName: last.name,
        fullName: `${first.name} ${last.name}`,
        gender: first.gender,
      };
    },
  };
};
