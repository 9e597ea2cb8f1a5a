import { connect, createServer, type Socket } from 'node:net';
import test from 'ava';
import { sql } from 'kysely';
import { createCatalogStore } from '../functions/api/src/catalog-store.ts';
import { loadCatalogRows } from '../functions/api/src/names-repository.ts';
import { createDatabase } from '../functions/lib/src/db.ts';
import { createLogger } from '../functions/lib/src/logger.ts';
import { createNamesDatabase } from './helpers/names-database.ts';
import { startPostgres, type TestPostgres } from './helpers/postgres.ts';

/**
 * A TCP proxy on loopback in front of PostgreSQL that can black-hole: from blackHole() on, every
 * connection open at that moment and every one opened meanwhile stops carrying bytes for good
 * (a frozen backend, a lost conntrack entry); after heal() new connections work again.
 */
const blackHoleProxy = async (target: number) => {
  let holing = false;
  const sockets = new Set<Socket>();
  const track = (socket: Socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
  };
  const server = createServer((client) => {
    track(client);
    if (holing) {
      client.pause();
      return;
    }
    const upstream = connect(target, '127.0.0.1');
    track(upstream);
    upstream.on('close', () => client.destroy());
    client.on('close', () => upstream.destroy());
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : 0,
    blackHole() {
      holing = true;
      for (const socket of sockets) {
        socket.unpipe();
        socket.pause();
      }
    },
    heal() {
      holing = false;
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
};

let server: TestPostgres;
test.before(async () => {
  server = await startPostgres();
});
test.after.always(() => server?.destroy());

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test.serial(
  'a black-holed database connection is replaced: the stale catalog is served within its bound, readiness says why, service returns after the heal',
  async (t) => {
    const { readerUrl } = await createNamesDatabase(server);
    const proxy = await blackHoleProxy(server.port);
    const proxied = new URL(readerUrl);
    proxied.port = String(proxy.port);
    const warnings: string[] = [];
    const logger = createLogger('test', 'warn', (line) => warnings.push(line));
    let replaced = 0;
    const deadlineMs = 500;
    const db = createDatabase({
      url: proxied.toString(),
      poolMax: 2,
      connectTimeoutMs: 500,
      statementTimeoutMs: deadlineMs,
      applicationName: 'secretid-test',
      onStuckConnection: () => {
        replaced += 1;
      },
    });
    const refreshMs = 1000;
    const maxStalenessMs = 3000;
    const store = createCatalogStore({
      load: () => loadCatalogRows(db),
      refreshMs,
      retryMs: 200,
      maxStalenessMs,
      loadTimeoutMs: 2000,
      logger,
    });
    try {
      await store.start();
      t.true(store.status().ready, 'ready through the proxy before the fault');

      proxy.blackHole();
      const holedAt = Date.now();
      // Until the copy is older than its bound it is served; after that, 503 with the cause known.
      let notReadyAfterMs: number | undefined;
      while (Date.now() - holedAt < 8000) {
        const status = store.status();
        const age = (status.ageSeconds ?? 0) * 1000;
        if (age <= maxStalenessMs - 100)
          t.notThrows(() => store.current(), `served at age ${age} ms`);
        if (!status.ready) {
          notReadyAfterMs = Date.now() - holedAt;
          break;
        }
        await sleep(50);
      }
      t.truthy(notReadyAfterMs, 'the catalog went stale while the database answered nothing');
      t.true(
        (notReadyAfterMs ?? 0) >= maxStalenessMs - refreshMs - 100,
        `stale at ${notReadyAfterMs} ms`,
      );
      t.throws(() => store.current(), { message: /unavailable/ });
      t.regex(
        store.status().lastError ?? '',
        /did not answer|timeout/i,
        'readiness names the cause',
      );

      proxy.heal();
      const healedAt = Date.now();
      while (!store.status().ready && Date.now() - healedAt < 10_000) await sleep(50);
      const recoveredMs = Date.now() - healedAt;
      t.log(
        `stale after ${notReadyAfterMs} ms of black hole; serving again ${recoveredMs} ms after the heal; ${replaced} connection(s) replaced`,
      );
      t.true(store.status().ready, 'serving again after the heal');
      // A reload in flight at the heal may still be waiting on a held connection: its deadline,
      // then the retry period, then one load.
      t.true(recoveredMs <= 2000 + refreshMs + 500, `recovered in ${recoveredMs} ms`);
      t.notThrows(() => store.current());
      t.true(replaced >= 1, 'the stuck connection was thrown away');
      t.true(
        warnings.some((line) => /names catalog reload failed/.test(line)),
        'the failure is logged',
      );
    } finally {
      store.stop();
      await db.destroy();
      await proxy.close();
    }
  },
);

test.serial('every pooled connection carries the server-side deadlines', async (t) => {
  const { readerUrl } = await createNamesDatabase(server, 'secretid_deadlines');
  const db = createDatabase({
    url: readerUrl,
    poolMax: 1,
    connectTimeoutMs: 2000,
    statementTimeoutMs: 1234,
    applicationName: 'secretid-test',
  });
  try {
    const { rows } = await sql<{ statement: string; idle: string }>`
      select current_setting('statement_timeout') as statement,
             current_setting('idle_in_transaction_session_timeout') as idle`.execute(db);
    t.deepEqual(rows[0], { statement: '1234ms', idle: '1234ms' });
  } finally {
    await db.destroy();
  }
});
