import test from 'ava';
import { connect, createNamesDatabase } from '../../../test/helpers/names-database.ts';
import { startPostgres, type TestPostgres } from '../../../test/helpers/postgres.ts';
import { createCatalog } from './catalog.ts';
import { loadCatalogRows } from './names-repository.ts';

let server: TestPostgres;
test.before(async () => {
  server = await startPostgres();
});
test.after.always(() => server?.destroy());

test('the read-only role loads the whole catalog in rank order from a real PostgreSQL', async (t) => {
  const { readerUrl } = await createNamesDatabase(server);
  const db = connect(readerUrl);
  try {
    const rows = await loadCatalogRows(db);
    t.is(rows.firstNames.length, 1000);
    t.is(rows.lastNames.length, 1000);
    t.is(rows.lastNames[0]?.name, 'Smith');
    t.is(rows.firstNames[0]?.sex, 'F');
    t.deepEqual(createCatalog(rows).size, { firstNames: 1000, lastNames: 1000 });
  } finally {
    await db.destroy();
  }
});
