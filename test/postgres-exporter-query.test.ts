/**
 * The chart's postgres_exporter query (chart/files/postgres-exporter/queries.yaml) on a real
 * PostgreSQL 15 with WAL archiving, run as a role that has pg_monitor and nothing else, as the
 * exporter's monitor role: a segment that cannot be archived waits and is counted, with its
 * age; once the archive works nothing waits; an idle server has nothing waiting.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import pg from 'pg';
import { parse } from 'yaml';
import { chartDirectory } from './helpers/helm.ts';
import { startPostgres, type TestPostgres } from './helpers/postgres.ts';

const queries = parse(
  readFileSync(join(chartDirectory, 'files/postgres-exporter/queries.yaml'), 'utf8'),
) as Record<string, { query: string; metrics: Record<string, { usage: string }>[] }>;
const walArchive = queries.pg_wal_archive;

let server: TestPostgres;
test.before(async () => {
  server = await startPostgres({
    // Archiving on without a command: PostgreSQL marks finished segments and archives none
    // (as with a failing command), until a test sets one. Not on the command line, which would
    // override ALTER SYSTEM.
    settings: { archive_mode: 'on', wal_level: 'replica' },
  });
  server.psql("CREATE ROLE monitor LOGIN PASSWORD 'm'; GRANT pg_monitor TO monitor");
});
test.after.always(() => server?.destroy());

const sample = async () => {
  const client = new pg.Client({ connectionString: server.url('postgres', 'monitor', 'm') });
  await client.connect();
  try {
    const result = await client.query(walArchive?.query ?? '');
    const row = result.rows[0] as Record<string, string>;
    return {
      ready: Number(row.ready_segments),
      oldestAgeSeconds: Number(row.oldest_ready_age_seconds),
    };
  } finally {
    await client.end();
  }
};

const until = async <T>(read: () => Promise<T>, done: (value: T) => boolean, what: string) => {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline) throw new Error(`${what}: still ${JSON.stringify(value)}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
};

test('the query declares the two gauges the rules use', (t) => {
  const names = (walArchive?.metrics ?? []).flatMap((entry) => Object.keys(entry));
  t.deepEqual(names, ['ready_segments', 'oldest_ready_age_seconds']);
  for (const entry of walArchive?.metrics ?? [])
    for (const metric of Object.values(entry)) t.is(metric.usage, 'GAUGE');
});

test.serial('a segment the archive refuses waits and is counted, then clears', async (t) => {
  server.psql('CREATE TABLE filler AS SELECT generate_series(1, 1000) AS n');
  server.psql('SELECT pg_switch_wal()');
  const waiting = await until(sample, (value) => value.ready >= 1, 'a finished segment waits');
  t.true(waiting.oldestAgeSeconds >= 0, JSON.stringify(waiting));
  await new Promise((resolve) => setTimeout(resolve, 1500));
  const later = await sample();
  t.true(later.oldestAgeSeconds >= 1, `the wait grows: ${JSON.stringify(later)}`);
  // A working archive_command: the archiver takes every waiting segment.
  server.psql("ALTER SYSTEM SET archive_command = 'true'");
  server.psql('SELECT pg_reload_conf()');
  const cleared = await until(sample, (value) => value.ready === 0, 'the archive catches up');
  t.deepEqual(cleared, { ready: 0, oldestAgeSeconds: 0 });
});

test.serial('an idle server has nothing waiting', async (t) => {
  await new Promise((resolve) => setTimeout(resolve, 1000));
  t.deepEqual(await sample(), { ready: 0, oldestAgeSeconds: 0 });
});
