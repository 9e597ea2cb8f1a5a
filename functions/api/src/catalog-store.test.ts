import { createLogger } from '@secretid/lib/logger';
import test from 'ava';
import { Registry } from 'prom-client';
import { CatalogUnavailableError, createCatalogStore } from './catalog-store.ts';
import { shippedCatalogRows } from './test-catalog.ts';

test('a copy older than the staleness bound is not served, and service resumes after a reload', async (t) => {
  let clock = 0;
  let databaseUp = true;
  const store = createCatalogStore({
    load: async () => {
      if (!databaseUp) throw new Error('database down');
      return shippedCatalogRows();
    },
    refreshMs: 1_000_000,
    retryMs: 1_000_000,
    maxStalenessMs: 5000,
    logger: createLogger('api', 'error', () => {}),
    now: () => clock,
  });
  await store.start();
  store.stop();
  t.true(store.status().ready);
  clock = 5000;
  t.truthy(store.current(), 'still fresh at the bound');
  clock = 5001;
  t.false(store.status().ready);
  t.throws(() => store.current(), { instanceOf: CatalogUnavailableError });
  databaseUp = false;
  await store.start();
  store.stop();
  t.regex(store.status().lastError ?? '', /database down/);
  databaseUp = true;
  await store.start();
  store.stop();
  t.true(store.status().ready);
  t.is(store.status().lastError, null);
});

test('the staleness bound is exported beside the age, for the NamesCatalogStale rule', async (t) => {
  const registry = new Registry();
  const store = createCatalogStore({
    load: async () => shippedCatalogRows(),
    refreshMs: 1_000_000,
    retryMs: 1_000_000,
    maxStalenessMs: 42_500,
    logger: createLogger('api', 'error', () => {}),
    registry,
    now: () => 0,
  });
  await store.start();
  store.stop();
  const text = await registry.metrics();
  t.regex(text, /^secretid_names_catalog_max_staleness_seconds 42\.5$/m);
  t.regex(text, /^secretid_names_catalog_age_seconds 0$/m);
});
