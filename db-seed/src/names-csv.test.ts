import test from 'ava';
import { parseFirstNamesCsv, parseLastNamesCsv } from './names-csv.ts';
import { readNamesData } from './seed.ts';
import { sources } from './sources.ts';

test('the shipped data has 500 + 500 first names and 1,000 surnames, all unique', (t) => {
  const { firstNames, lastNames } = readNamesData();
  const female = firstNames.filter((row) => row.sex === 'F');
  const male = firstNames.filter((row) => row.sex === 'M');
  t.is(female.length, sources.firstNames.perSex);
  t.is(male.length, sources.firstNames.perSex);
  t.is(lastNames.length, sources.lastNames.size);
  t.is(new Set(female.map((row) => row.name)).size, 500);
  t.is(new Set(male.map((row) => row.name)).size, 500);
  t.is(new Set(lastNames.map((row) => row.name)).size, 1000);
  t.deepEqual(
    female.map((row) => row.rank),
    Array.from({ length: 500 }, (_, i) => i + 1),
  );
  t.deepEqual(
    lastNames.map((row) => row.rank),
    Array.from({ length: 1000 }, (_, i) => i + 1),
  );
  // Ranks follow the counts.
  for (const list of [female, male, lastNames]) {
    t.true(list.every((row, i) => i === 0 || (list[i - 1]?.count ?? 0) >= row.count));
  }
  t.is(lastNames[0]?.name, sources.lastNames.anchor.name);
  t.is(lastNames[0]?.count, sources.lastNames.anchor.count);
});

test('a bad CSV row is rejected naming file, line and field', (t) => {
  t.throws(() => parseFirstNamesCsv('sex,rank,name,count\nF,1,Olivia,10\nX,2,Emma,9\n', 'f.csv'), {
    message: 'f.csv:3: sex must be F or M, found "X"',
  });
  t.throws(() => parseLastNamesCsv('rank,name,count\n1,Smith,-4\n', 'l.csv'), {
    message: 'l.csv:2: count must be a positive integer, found "-4"',
  });
  t.throws(() => parseLastNamesCsv('rank,name,count\n1,<script>,4\n', 'l.csv'), {
    message: 'l.csv:2: "<script>" is not a name',
  });
  t.throws(() => parseLastNamesCsv('name,count\n', 'l.csv'), { message: /expected header/ });
});
