import { spawnSync } from 'node:child_process';
import test from 'ava';
import { bundles } from '../scripts/build.ts';
import { connect } from './helpers/names-database.ts';
import { startPostgres, type TestPostgres } from './helpers/postgres.ts';

let server: TestPostgres;
test.before(async () => {
  server = await startPostgres();
  server.psql(
    "CREATE ROLE seed_owner LOGIN PASSWORD 'o'; CREATE ROLE secretid_reader LOGIN PASSWORD 'r'",
  );
  server.psql('CREATE DATABASE names OWNER seed_owner');
  server.psql('ALTER SCHEMA public OWNER TO seed_owner', 'names');
});
test.after.always(() => server?.destroy());

const seed = (env: Record<string, string>) =>
  spawnSync(process.execPath, [bundles.seed.output], {
    env: { PATH: process.env.PATH ?? '', ...env },
    encoding: 'utf8',
    timeout: 60_000,
  });

test.serial(
  'the bundled seeder migrates, seeds and grants, and a rerun changes nothing',
  async (t) => {
    const env = { DATABASE_URL: server.url('names', 'seed_owner', 'o') };
    const first = seed(env);
    t.is(first.status, 0, first.stderr);
    t.regex(first.stdout, /\[2\/4\] applying migrations\n\s+applied 2026-11-24-001-name-tables/);
    t.regex(
      first.stdout,
      /first names: 1000 written, 0 removed; surnames: 1000 written, 0 removed/,
    );
    const second = seed(env);
    t.is(second.status, 0, second.stderr);
    t.regex(second.stdout, /already up to date/);
    const db = connect(server.url('names', 'secretid_reader', 'r'));
    try {
      const rows = await db.selectFrom('first_names').select(['sex']).execute();
      t.is(rows.length, 1000);
      t.is(rows.filter((row) => row.sex === 'F').length, 500);
    } finally {
      await db.destroy();
    }
  },
);

test.serial('the seeder names the cause when it cannot reach the database', (t) => {
  const result = seed({
    DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none',
    SEED_WAIT_SECONDS: '1',
  });
  t.is(result.status, 1);
  t.regex(result.stderr, /seed failed: database not reachable after 1s: .*ECONNREFUSED/);
});

test.serial('the seeder refuses to run without DATABASE_URL', (t) => {
  const result = seed({});
  t.is(result.status, 1);
  t.regex(result.stderr, /DATABASE_URL is required/);
});
