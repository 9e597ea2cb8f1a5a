/**
 * The web function's OpenAPI document (functions/web/openapi.json) against the implementation:
 * the paths it serves, the page's gender choices (the form's own), the version; the running
 * contract is fuzzed from it by test/openapi-fuzz.test.ts.
 */
import { readFileSync } from 'node:fs';
import { createLogger } from '@secretid/lib/logger';
import { createMetrics } from '@secretid/lib/metrics';
import test from 'ava';
import document from '../openapi.json' with { type: 'json' };
import { createApp } from './app.ts';
import { identityPage } from './page.ts';

const app = () =>
  createApp({
    api: {
      randomName: async () => ({
        firstName: 'Ada',
        lastName: 'Lovelace',
        fullName: 'Ada Lovelace',
        gender: 'female',
      }),
    },
    metrics: createMetrics('web'),
    logger: createLogger('web', 'error', () => {}),
  });

test('the document lists exactly the paths the web function serves with GET', (t) => {
  const served = new Set(
    app()
      .routes.filter((route) => route.method === 'GET' && !route.path.includes('*'))
      .map((route) => route.path),
  );
  t.deepEqual(Object.keys(document.paths).sort(), [...served].sort());
});

test("the page's gender choices are the form's, plus empty", (t) => {
  const html = identityPage(
    { firstName: 'Ada', lastName: 'Lovelace', fullName: 'Ada Lovelace', gender: 'female' },
    'any',
  );
  const offered = [...html.matchAll(/<option value="([^"]*)"/g)].map((match) => match[1]);
  const gender = document.paths['/'].get.parameters.find((entry) => entry.name === 'gender');
  t.deepEqual(gender?.schema.enum, ['', ...offered]);
});

test("the document's version is the web package's", (t) => {
  const manifest = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
  t.is(document.openapi, '3.1.0');
  t.is(document.info.version, manifest.version);
});

test('GET /openapi.json serves the document as JSON', async (t) => {
  const response = await app().request('/openapi.json');
  t.is(response.status, 200);
  t.deepEqual(await response.json(), document);
});
