/**
 * The api's OpenAPI document (functions/api/openapi.json) against the implementation: the paths
 * it serves, the parameters /randomName accepts and their limits, the version; the running
 * contract is fuzzed from it by test/openapi-fuzz.test.ts.
 */
import { readFileSync } from 'node:fs';
import { createLogger } from '@secretid/lib/logger';
import { createMetrics } from '@secretid/lib/metrics';
import test from 'ava';
import document from '../openapi.json' with { type: 'json' };
import { createApp } from './app.ts';
import { genders } from './catalog.ts';
import { createCatalogStore } from './catalog-store.ts';
import { maxCount, maxSeedLength, queryParameters } from './query.ts';
import { shippedCatalogRows } from './test-catalog.ts';

const silent = createLogger('api', 'error', () => {});
const app = () => {
  const metrics = createMetrics('api');
  const catalog = createCatalogStore({
    load: async () => shippedCatalogRows(),
    refreshMs: 60_000,
    retryMs: 60_000,
    maxStalenessMs: 60_000,
    logger: silent,
    registry: metrics.registry,
  });
  return createApp({ catalog, metrics, logger: silent });
};

interface Parameter {
  name: string;
  in: string;
  schema: {
    type: string;
    enum?: string[];
    minimum?: number;
    maximum?: number;
    maxLength?: number;
    minLength?: number;
  };
}
const parameters = document.paths['/randomName'].get.parameters as Parameter[];
const parameter = (name: string) => parameters.find((entry) => entry.name === name)?.schema;

test('the document lists exactly the paths the api serves with GET', (t) => {
  const served = new Set(
    app()
      .routes.filter((route) => route.method === 'GET' && !route.path.includes('*'))
      .map((route) => route.path),
  );
  t.deepEqual(Object.keys(document.paths).sort(), [...served].sort());
});

test("/randomName's parameters and their limits are the code's", (t) => {
  t.deepEqual(parameters.map((entry) => entry.name).sort(), [...queryParameters].sort());
  t.true(parameters.every((entry) => entry.in === 'query'));
  t.deepEqual(parameter('gender')?.enum, [...genders]);
  t.is(parameter('count')?.minimum, 1);
  t.is(parameter('count')?.maximum, maxCount);
  t.is(parameter('seed')?.minLength, 1);
  t.is(parameter('seed')?.maxLength, maxSeedLength);
  t.is(parameter('weighted')?.type, 'boolean');
  const list = document.components.schemas.IdentityList.properties.names;
  t.is(list.maxItems, maxCount);
  t.deepEqual(document.components.schemas.Identity.properties.gender.enum, [...genders]);
});

test("the document's version is the api package's", (t) => {
  const manifest = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
  t.is(document.openapi, '3.1.0');
  t.is(document.info.version, manifest.version);
});

test('GET /openapi.json serves the document as JSON; POST gets 405', async (t) => {
  const response = await app().request('/openapi.json');
  t.is(response.status, 200);
  t.is(response.headers.get('content-type'), 'application/json');
  t.deepEqual(await response.json(), document);
  const post = await app().request('/openapi.json', { method: 'POST' });
  t.is(post.status, 405);
  t.is(post.headers.get('allow'), 'GET, HEAD');
});
