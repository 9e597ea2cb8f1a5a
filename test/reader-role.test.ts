/**
 * The read-only role the api connects as, set up by the chart's own ensure-roles.sh against a
 * real PostgreSQL 15 and granted by the seeder as the seed Job does: it reads the name tables
 * and writes nothing anywhere, large objects and temporary tables included, and it opens a
 * session in no database but the application's.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import type { Kysely } from 'kysely';
import pg from 'pg';
import { migrateToLatest } from '../db-seed/src/migrations.ts';
import { grantReadAccess } from '../db-seed/src/roles.ts';
import { seedNames } from '../db-seed/src/seed.ts';
import { loadCatalogRows } from '../functions/api/src/names-repository.ts';
import { chartDirectory } from './helpers/helm.ts';
import { connect } from './helpers/names-database.ts';
import { startPostgres, type TestPostgres } from './helpers/postgres.ts';

const superuserPassword = randomBytes(12).toString('hex');
const roles = {
  owner: { name: 'secretid_owner', password: randomBytes(12).toString('hex') },
  reader: { name: 'secretid_reader', password: randomBytes(12).toString('hex') },
  monitor: { name: 'secretid_monitor', password: randomBytes(12).toString('hex') },
};
const database = 'secretid';

let server: TestPostgres;

/** Runs the chart's script exactly as the seed Job's ensure-roles container does. */
const ensureRoles = () =>
  spawnSync('bash', [join(chartDirectory, 'files/postgres/ensure-roles.sh')], {
    encoding: 'utf8',
    timeout: 60_000,
    env: {
      PATH: process.env.PATH ?? '',
      PGHOST: '127.0.0.1',
      PGPORT: String(server.port),
      PGUSER: 'postgres',
      PGPASSWORD: superuserPassword,
      DATABASE: database,
      OWNER_ROLE: roles.owner.name,
      OWNER_PASSWORD: roles.owner.password,
      READER_ROLE: roles.reader.name,
      READER_PASSWORD: roles.reader.password,
      MONITOR_ROLE: roles.monitor.name,
      MONITOR_PASSWORD: roles.monitor.password,
      WAIT_SECONDS: '20',
    },
  });

/** One session as the reader (a plain client: each statement is its own transaction). */
const asReader = async <T>(databaseName: string, work: (client: pg.Client) => Promise<T>) => {
  const client = new pg.Client({
    connectionString: server.url(databaseName, roles.reader.name, roles.reader.password),
  });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
};

/** The SQLSTATE a statement fails with, or 'succeeded'. */
const outcome = async (client: pg.Client, statement: string) => {
  try {
    await client.query(statement);
    return 'succeeded';
  } catch (error) {
    return (error as { code?: string }).code ?? String(error);
  } finally {
    await client.query('ROLLBACK').catch(() => {});
  }
};

test.before(async () => {
  // The chart's own client authentication: every network client proves its password.
  const hbaFile = readFileSync(join(chartDirectory, 'files/postgres/pg_hba.conf'), 'utf8');
  server = await startPostgres({ superuserPassword, hbaFile });
  const first = ensureRoles();
  if (first.status !== 0) throw new Error(`ensure-roles.sh failed: ${first.stderr}`);
  const owner = connect(server.url(database, roles.owner.name, roles.owner.password));
  try {
    await migrateToLatest(owner as Kysely<unknown>);
    await seedNames(owner);
    await grantReadAccess(owner as Kysely<unknown>, roles.reader.name);
  } finally {
    await owner.destroy();
  }
});
test.after.always(() => server?.destroy());

test.serial('ensure-roles.sh runs again without error (every helm upgrade runs it)', (t) => {
  const again = ensureRoles();
  t.is(again.status, 0, again.stderr);
  t.regex(again.stdout, /ensure-roles: done/);
});

test.serial('the reader reads every table the api loads, in a read-only session', async (t) => {
  const reader = connect(server.url(database, roles.reader.name, roles.reader.password));
  try {
    const rows = await loadCatalogRows(reader);
    t.true(rows.firstNames.length > 0 && rows.lastNames.length > 0);
  } finally {
    await reader.destroy();
  }
  const readOnly = await asReader(database, async (client) =>
    client.query<{ transaction_read_only: string }>('SHOW transaction_read_only'),
  );
  t.is(readOnly.rows[0]?.transaction_read_only, 'on');
});

// Each attempt in a read-write transaction, so what stops it is a missing privilege and not
// the session's read-only default, which the role may turn off.
const writes: [string, string][] = [
  ['a large object from bytes', "SELECT lo_from_bytea(0, '\\x00'::bytea)"],
  ['a large object by lo_create', 'SELECT lo_create(0)'],
  ['a large object by lo_creat', 'SELECT lo_creat(-1)'],
  ['a temporary table', 'CREATE TEMPORARY TABLE scratch (x int)'],
  ['a table in public', 'CREATE TABLE public.scratch (x int)'],
  ['a schema', 'CREATE SCHEMA scratch'],
  ['a row in first_names', "INSERT INTO first_names (name) VALUES ('x')"],
  ['a changed row', "UPDATE last_names SET name = 'x'"],
  ['a removed row', 'DELETE FROM name_sources'],
];
for (const [what, statement] of writes) {
  test.serial(`the reader cannot write ${what}, even in a read-write transaction`, async (t) => {
    const code = await asReader(database, async (client) => {
      await client.query('BEGIN READ WRITE');
      return outcome(client, statement);
    });
    t.is(code, '42501', `${statement}: expected 42501 (insufficient privilege), got ${code}`);
  });
}

test.serial('in its default read-only session the reader writes nothing either', async (t) => {
  const code = await asReader(database, (client) =>
    outcome(client, "SELECT lo_from_bytea(0, '\\x00'::bytea)"),
  );
  t.not(code, 'succeeded');
});

for (const other of ['postgres', 'template1']) {
  test.serial(`the reader cannot open a session in ${other}`, async (t) => {
    const error = await t.throwsAsync(asReader(other, async () => undefined));
    t.is((error as { code?: string }).code, '42501', error?.message);
    t.regex(error?.message ?? '', /permission denied for database/);
  });
}

test.serial(
  'what the reader can still do, change its own password, the next ensure-roles.sh undoes',
  async (t) => {
    await asReader(database, async (client) => {
      await client.query('BEGIN READ WRITE');
      await client.query(`ALTER ROLE ${roles.reader.name} PASSWORD 'changed-by-the-role'`);
      await client.query('COMMIT');
    });
    await t.throwsAsync(
      asReader(database, async () => undefined),
      {
        message: /password authentication failed/,
      },
    );
    t.is(ensureRoles().status, 0);
    const rows = await asReader(database, (client) => client.query('SELECT 1 AS one'));
    t.is(rows.rows[0]?.one, 1);
  },
);
