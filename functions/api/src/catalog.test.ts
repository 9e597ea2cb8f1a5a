import test from 'ava';
import { createCatalog } from './catalog.ts';
import { seededRandom } from './random.ts';
import { shippedCatalogRows } from './test-catalog.ts';

const rows = shippedCatalogRows();
const catalog = createCatalog(rows);

/**
 * Upper critical value of chi-square with `df` degrees of freedom at significance 0.001,
 * by the Wilson-Hilferty approximation (accurate to well under 1% for df in the hundreds).
 */
const chiSquareCritical = (df: number) => {
  const z = 3.090232; // standard normal quantile for 0.999
  return df * (1 - 2 / (9 * df) + z * Math.sqrt(2 / (9 * df))) ** 3;
};

const chiSquare = (observed: Map<string, number>, keys: string[], expected: number) =>
  keys.reduce((sum, key) => sum + ((observed.get(key) ?? 0) - expected) ** 2 / expected, 0);

test('uniform sampling reaches every row with equal probability (chi-square, alpha 0.001)', (t) => {
  const random = seededRandom('chi-square-uniform');
  const draws = 200_000;
  const firstSeen = new Map<string, number>();
  const lastSeen = new Map<string, number>();
  for (let i = 0; i < draws; i++) {
    const identity = catalog.draw({ random, weighted: false });
    const key = `${identity.gender}:${identity.firstName}`;
    firstSeen.set(key, (firstSeen.get(key) ?? 0) + 1);
    lastSeen.set(identity.lastName, (lastSeen.get(identity.lastName) ?? 0) + 1);
  }
  const firstKeys = rows.firstNames.map(
    (row) => `${row.sex === 'F' ? 'female' : 'male'}:${row.name}`,
  );
  const lastKeys = rows.lastNames.map((row) => row.name);
  t.is(firstSeen.size, 1000, 'every first-name row was drawn');
  t.is(lastSeen.size, 1000, 'every surname row was drawn');
  t.true((lastSeen.get(lastKeys.at(-1) as string) ?? 0) > 0, 'the last surname is reachable');
  const critical = chiSquareCritical(999);
  t.true(chiSquare(firstSeen, firstKeys, draws / 1000) < critical, 'first names are uniform');
  t.true(chiSquare(lastSeen, lastKeys, draws / 1000) < critical, 'surnames are uniform');
});

test('the chi-square check rejects the original off-by-one sampler', (t) => {
  // The original drew indexes 1..999 of 1,000: row 0 never appears. Same test, same seed.
  const random = seededRandom('chi-square-uniform');
  const draws = 200_000;
  const seen = new Map<string, number>();
  for (let i = 0; i < draws; i++) {
    const row = rows.lastNames[1 + random.int(999)];
    seen.set(row?.name ?? '', (seen.get(row?.name ?? '') ?? 0) + 1);
  }
  const keys = rows.lastNames.map((row) => row.name);
  t.true(chiSquare(seen, keys, draws / 1000) > chiSquareCritical(999));
});

test('weighted sampling follows the stored counts', (t) => {
  const random = seededRandom('weighted');
  const draws = 100_000;
  let smith = 0;
  for (let i = 0; i < draws; i++) {
    if (catalog.draw({ random, weighted: true }).lastName === 'Smith') smith++;
  }
  const total = rows.lastNames.reduce((sum, row) => sum + row.count, 0);
  const expected = (draws * (rows.lastNames[0]?.count ?? 0)) / total;
  // Binomial standard deviation is about 46 here; allow five of them.
  t.true(Math.abs(smith - expected) < 5 * Math.sqrt(expected), `${smith} vs ${expected}`);
});

test('gender filters first names', (t) => {
  const random = seededRandom('gender');
  const femaleNames = new Set(
    rows.firstNames.filter((row) => row.sex === 'F').map((row) => row.name),
  );
  for (let i = 0; i < 500; i++) {
    const identity = catalog.draw({ random, weighted: i % 2 === 0, gender: 'female' });
    t.is(identity.gender, 'female');
    t.true(femaleNames.has(identity.firstName));
    t.is(identity.fullName, `${identity.firstName} ${identity.lastName}`);
  }
});

test('an empty table is refused with the fix', (t) => {
  t.throws(() => createCatalog({ firstNames: [], lastNames: rows.lastNames }), {
    message: /run the seeder/,
  });
});
