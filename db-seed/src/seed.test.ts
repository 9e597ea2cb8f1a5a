import test from 'ava';
import { sql } from 'kysely';
import {
  connect,
  createNamesDatabase,
  type NamesDatabaseUrls,
} from '../../test/helpers/names-database.ts';
import { startPostgres, type TestPostgres } from '../../test/helpers/postgres.ts';
import { readNamesData, seedNames } from './seed.ts';

let server: TestPostgres;
let urls: NamesDatabaseUrls;

test.before(async () => {
  server = await startPostgres();
  urls = await createNamesDatabase(server);
});
test.after.always(() => server?.destroy());

const counts = async (url: string) => {
  const db = connect(url);
  try {
    const first = await db
      .selectFrom('first_names')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .executeTakeFirstOrThrow();
    const last = await db
      .selectFrom('last_names')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .executeTakeFirstOrThrow();
    return { first: Number(first.n), last: Number(last.n) };
  } finally {
    await db.destroy();
  }
};

test.serial('the seeded database holds every CSV row once', async (t) => {
  const data = readNamesData();
  t.deepEqual(await counts(urls.readerUrl), {
    first: data.firstNames.length,
    last: data.lastNames.length,
  });
});

test.serial('seeding again adds no duplicates and raises no error', async (t) => {
  const db = connect(urls.ownerUrl);
  try {
    const report = await seedNames(db);
    t.is(report.firstNames.removed, 0);
    t.is(report.lastNames.removed, 0);
  } finally {
    await db.destroy();
  }
  t.deepEqual(await counts(urls.readerUrl), { first: 1000, last: 1000 });
});

test.serial('seeding replaces rows that left the data and keeps ranks consistent', async (t) => {
  const data = readNamesData();
  const db = connect(urls.ownerUrl);
  try {
    const shifted = {
      firstNames: data.firstNames
        .slice(1)
        .map((row) => (row.sex === 'F' ? { ...row, rank: row.rank - 1 } : row)),
      lastNames: data.lastNames.slice(0, 999),
    };
    const report = await seedNames(db, shifted);
    t.is(report.firstNames.removed, 1);
    t.is(report.lastNames.removed, 1);
    t.deepEqual(await counts(urls.readerUrl), { first: 999, last: 999 });
    await seedNames(db, data);
    t.deepEqual(await counts(urls.readerUrl), { first: 1000, last: 1000 });
  } finally {
    await db.destroy();
  }
});

test.serial('the reader role can read the names but not change them', async (t) => {
  const db = connect(urls.readerUrl);
  try {
    const row = await db
      .selectFrom('last_names')
      .selectAll()
      .where('rank', '=', 1)
      .executeTakeFirstOrThrow();
    t.is(row.name, 'Smith');
    const error = await t.throwsAsync(sql`DELETE FROM last_names`.execute(db));
    t.regex(error?.message ?? '', /permission denied/);
    const create = await t.throwsAsync(sql`CREATE TABLE intruder (id int)`.execute(db));
    t.regex(create?.message ?? '', /permission denied/);
  } finally {
    await db.destroy();
  }
});
