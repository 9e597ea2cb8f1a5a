import { createLogger } from '@secretid/lib/logger';
import { createMetrics } from '@secretid/lib/metrics';
import test from 'ava';
import { createApp, revisionHeader } from './app.ts';
import type { CatalogRows } from './catalog.ts';
import { createCatalogStore } from './catalog-store.ts';
import { shippedCatalogRows } from './test-catalog.ts';

const silent = createLogger('api', 'error', () => {});

const build = async (
  load: () => Promise<CatalogRows> = async () => shippedCatalogRows(),
  revision?: string,
) => {
  const metrics = createMetrics('api');
  const catalog = createCatalogStore({
    load,
    refreshMs: 60_000,
    retryMs: 60_000,
    maxStalenessMs: 60_000,
    logger: silent,
    registry: metrics.registry,
  });
  await catalog.start();
  catalog.stop();
  return createApp({ catalog, metrics, logger: silent, ...(revision ? { revision } : {}) });
};

test('GET /randomName returns one identity, not cacheable', async (t) => {
  const app = await build();
  const response = await app.request('/randomName');
  t.is(response.status, 200);
  t.regex(response.headers.get('content-type') ?? '', /^application\/json/);
  t.is(response.headers.get('cache-control'), 'no-store');
  const body = await response.json();
  t.deepEqual(Object.keys(body).sort(), ['firstName', 'fullName', 'gender', 'lastName']);
  t.is(body.fullName, `${body.firstName} ${body.lastName}`);
  t.true(['female', 'male'].includes(body.gender));
});

test('count returns a list, seed makes it reproducible, gender filters', async (t) => {
  const app = await build();
  const get = async (query: string) => (await app.request(`/randomName?${query}`)).json();
  const first = await get('count=25&seed=moneypenny&gender=female');
  const again = await get('count=25&seed=moneypenny&gender=female');
  t.is(first.names.length, 25);
  t.deepEqual(first, again);
  t.true(first.names.every((identity: { gender: string }) => identity.gender === 'female'));
  t.notDeepEqual(first, await get('count=25&seed=q&gender=female'));
  t.is((await get('count=1')).names.length, 1);
});

test('bad input is a 400 problem document naming the parameter', async (t) => {
  const app = await build();
  const response = await app.request('/randomName?count=500');
  t.is(response.status, 400);
  t.is(response.headers.get('content-type'), 'application/problem+json');
  t.is(response.headers.get('cache-control'), 'no-store');
  const body = await response.json();
  t.is(body.status, 400);
  t.regex(body.detail, /^count must be/);
});

test('an unknown path is a 404 problem document', async (t) => {
  const app = await build();
  const response = await app.request('/secret/files');
  t.is(response.status, 404);
  t.is(response.headers.get('content-type'), 'application/problem+json');
  t.is((await response.json()).status, 404);
});

test('without a catalog the API answers 503 at once and is not ready', async (t) => {
  const app = await build(async () => {
    throw new Error('connect ECONNREFUSED 127.0.0.1:5432');
  });
  const response = await app.request('/randomName');
  t.is(response.status, 503);
  t.is(response.headers.get('retry-after'), '1');
  const detail = (await response.json()).detail as string;
  t.regex(detail, /names database is unavailable and no names have been loaded yet/);
  const readiness = await app.request('/readyz');
  t.is(readiness.status, 503);
  const readyBody = await readiness.text();
  t.regex(readyBody, /"reason":"names not loaded yet"/);
  // The driver's error reaches neither body (it names addresses and roles).
  for (const body of [detail, readyBody]) t.notRegex(body, /ECONNREFUSED|127\.0\.0\.1|5432/);
  t.is((await app.request('/healthz')).status, 200);
});

test('/metrics labels requests by route template, never by raw path', async (t) => {
  const app = await build();
  await app.request('/randomName?count=2');
  await app.request('/no/such/path/12345');
  const text = await (await app.request('/metrics')).text();
  t.regex(
    text,
    /http_requests_total\{method="GET",route="\/randomName",status="200",service="api"\} 1/,
  );
  t.regex(
    text,
    /http_requests_total\{method="GET",route="unmatched",status="404",service="api"\} 1/,
  );
  t.false(text.includes('12345'));
  t.regex(text, /process_resident_memory_bytes/);
  t.regex(text, /secretid_names_catalog_age_seconds/);
});

test('on Knative every JSON answer names the revision that served it; outside, none', async (t) => {
  const onKnative = await build(undefined, 'api-00007');
  for (const path of ['/randomName', '/randomName?count=2', '/healthz']) {
    const response = await onKnative.request(path);
    t.is(response.status, 200, path);
    t.is(response.headers.get(revisionHeader), 'api-00007', path);
  }
  const outside = await build();
  t.is((await outside.request('/randomName')).headers.get(revisionHeader), null);
});

test('another method on a path the api serves is 405 with Allow; HEAD is answered like GET', async (t) => {
  const app = await build();
  for (const path of ['/randomName', '/healthz', '/readyz', '/metrics']) {
    const response = await app.request(path, { method: 'POST' });
    t.is(response.status, 405, path);
    t.is(response.headers.get('allow'), 'GET, HEAD', path);
    t.is(response.headers.get('content-type'), 'application/problem+json', path);
    t.is((await response.json()).status, 405, path);
  }
  t.is((await app.request('/randomName', { method: 'DELETE' })).status, 405);
  t.is((await app.request('/randomName', { method: 'HEAD' })).status, 200);
  t.is((await app.request('/no/such/path', { method: 'POST' })).status, 404);
});
