/**
 * `npm start`: the whole system on one machine, no Docker, no cluster.
 *
 * - PostgreSQL: an embedded PGlite database kept in .local/pgdata (git-ignored) and served over
 *   the Postgres wire protocol on loopback; DATABASE_URL uses an existing PostgreSQL instead.
 * - Migrations and the idempotent seed, then the api and web functions as separate processes.
 * - A local edge on PORT (default 8080) routing by Host header like Traefik does:
 *   api.secretid -> api; web.secretid and localhost -> web.
 * Ctrl-C stops everything cleanly.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { migrateToLatest } from '../db-seed/src/migrations.ts';
import { grantReadAccess } from '../db-seed/src/roles.ts';
import type { NamesDatabase } from '../db-seed/src/schema.ts';
import { seedNames } from '../db-seed/src/seed.ts';
import { freePort } from '../test/helpers/free-port.ts';
import { startEdge } from './edge.ts';
import { localHosts } from './local-hosts.ts';
import { type FunctionProcess, spawnFunction, waitUntilReady } from './processes.ts';

const dataDirectory = process.env.LOCAL_DATA_DIR ?? '.local/pgdata';
const edgePort = Number(process.env.PORT ?? '8080');
if (!Number.isInteger(edgePort) || edgePort < 1 || edgePort > 65535) {
  console.error(`PORT must be an integer from 1 to 65535, got "${process.env.PORT}"`);
  process.exit(2);
}

const lockFile = `${dataDirectory}.lock`;

/** Holds `lockFile` for this process, or exits 2 naming the process that holds it. */
const lockDataDirectory = () => {
  for (let attempt = 0; attempt < 2; attempt += 1) {
    try {
      writeFileSync(lockFile, `${process.pid}\n`, { flag: 'wx' });
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const holder = Number(readFileSync(lockFile, 'utf8').trim());
    let alive = false;
    try {
      alive = Number.isInteger(holder) && holder > 0 && process.kill(holder, 0);
    } catch {
      alive = false;
    }
    if (alive) {
      console.error(
        `another npm start (pid ${holder}) is running with its data in ${dataDirectory}: stop it ` +
          `(Ctrl-C in its terminal), or give this one its own folder with LOCAL_DATA_DIR=<folder>`,
      );
      process.exit(2);
    }
    // Left by a run that was killed: nobody holds it.
    rmSync(lockFile, { force: true });
  }
  throw new Error(`could not take ${lockFile}`);
};

const cleanups: (() => Promise<unknown>)[] = [];
let stopping = false;
const stop = async (code: number) => {
  if (stopping) return;
  stopping = true;
  console.log('stopping: edge, functions, database ...');
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
  console.log('stopped');
  process.exit(code);
};
process.on('SIGINT', () => void stop(0));
process.on('SIGTERM', () => void stop(0));

try {
  let databaseUrl = process.env.DATABASE_URL?.trim();
  if (databaseUrl) {
    console.log('[1/4] using the PostgreSQL at DATABASE_URL');
  } else {
    mkdirSync(dataDirectory, { recursive: true });
    // Before the database is opened: a second `npm start` on the same folder would open the same
    // files (PGlite has no lock of its own) and migrate them under the first one.
    lockDataDirectory();
    cleanups.push(async () => rmSync(lockFile, { force: true }));
    console.log(`[1/4] starting embedded PostgreSQL (PGlite) with data in ${dataDirectory}`);
    const db = await PGlite.create(dataDirectory);
    const socketServer = new PGLiteSocketServer({
      db,
      port: await freePort(),
      host: '127.0.0.1',
      maxConnections: 16,
    });
    await socketServer.start();
    cleanups.push(async () => {
      await socketServer.stop();
      await db.close();
    });
    const address = socketServer.getServerConn();
    databaseUrl = `postgres://postgres@${address}/postgres`;
  }

  console.log('[2/4] applying migrations and seeding the names');
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 1 });
  const owner = new Kysely<NamesDatabase>({ dialect: new PostgresDialect({ pool }) });
  try {
    const applied = await migrateToLatest(owner as Kysely<unknown>);
    console.log(
      `      migrations: ${applied.length === 0 ? 'already up to date' : applied.join(', ')}`,
    );
    const report = await seedNames(owner);
    await grantReadAccess(owner as Kysely<unknown>, new URL(databaseUrl).username || 'postgres');
    console.log(
      `      ${report.firstNames.written} first names, ${report.lastNames.written} surnames in place`,
    );
  } finally {
    await owner.destroy();
  }

  console.log('[3/4] starting the api and web functions');
  const [apiPort, webPort] = [await freePort(), await freePort()];
  const logLevel = process.env.LOG_LEVEL ?? 'info';
  const api = spawnFunction({
    name: 'api',
    script: 'functions/api/src/server.ts',
    port: apiPort,
    env: { DATABASE_URL: databaseUrl, LOG_LEVEL: logLevel, LISTEN_HOST: '127.0.0.1' },
    echo: true,
  });
  const web = spawnFunction({
    name: 'web',
    script: 'functions/web/src/server.ts',
    port: webPort,
    env: { API_URL: `http://127.0.0.1:${apiPort}`, LOG_LEVEL: logLevel, LISTEN_HOST: '127.0.0.1' },
    echo: true,
  });
  for (const child of [api, web] as FunctionProcess[]) {
    cleanups.push(() => child.stop());
    void child.exited.then((code) => {
      if (!stopping) {
        console.error(`${child.name} exited unexpectedly (code ${code}); stopping`);
        void stop(1);
      }
    });
  }
  await waitUntilReady(api, `http://127.0.0.1:${apiPort}/readyz`);
  await waitUntilReady(web, `http://127.0.0.1:${webPort}/readyz`);

  console.log(`[4/4] starting the local edge on port ${edgePort}`);
  const edge = await startEdge({
    port: edgePort,
    // Loopback only, both families: a browser may resolve localhost to either.
    hosts: ['127.0.0.1', '::1'],
    routes: {
      [localHosts.api]: `http://127.0.0.1:${apiPort}`,
      [localHosts.web]: `http://127.0.0.1:${webPort}`,
      // A browser's address bar: the page, by name or by loopback address.
      localhost: `http://127.0.0.1:${webPort}`,
      '127.0.0.1': `http://127.0.0.1:${webPort}`,
      '::1': `http://127.0.0.1:${webPort}`,
    },
  });
  cleanups.push(() => edge.close());

  console.log(`
secretid is running.
  page:  http://localhost:${edgePort}/
  api:   curl -H 'Host: ${localHosts.api}' http://localhost:${edgePort}/randomName
         curl -H 'Host: ${localHosts.api}' 'http://localhost:${edgePort}/randomName?gender=female&count=3'
  web:   curl -H 'Host: ${localHosts.web}' http://localhost:${edgePort}/
Press Ctrl-C to stop.`);
} catch (error) {
  console.error(`local run failed: ${(error as Error).message}`);
  await stop(1);
}
