import { createLogger } from '@secretid/lib/logger';
import { createMetrics } from '@secretid/lib/metrics';
import test, { type ExecutionContext } from 'ava';
import {
  ApiUnavailableError,
  type Gender,
  type Identity,
  type IdentitySource,
} from './api-client.ts';
import { createApp, retryAfterSeconds } from './app.ts';
import { stylesheet, stylesheetHref } from './styles.ts';

const ada: Identity = {
  firstName: 'Ada',
  lastName: 'Lovelace',
  fullName: 'Ada Lovelace',
  gender: 'female',
};

/** Builds the app over a fake API; records the genders asked for and the log lines. */
const setup = (randomName: IdentitySource['randomName'] = async () => ada) => {
  const asked: (Gender | undefined)[] = [];
  const logs: Record<string, unknown>[] = [];
  const app = createApp({
    api: {
      randomName: (options) => {
        asked.push(options?.gender);
        return randomName(options);
      },
    },
    metrics: createMetrics('web'),
    logger: createLogger('web', 'debug', (line) => logs.push(JSON.parse(line))),
  });
  return { app, asked, logs };
};

const down = async (): Promise<Identity> => {
  throw new ApiUnavailableError('ECONNREFUSED: connect ECONNREFUSED 10.0.0.1:80', { attempts: 3 });
};

const expectSecurityHeaders = (t: ExecutionContext, response: Response) => {
  t.is(
    response.headers.get('content-security-policy'),
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
  );
  t.is(response.headers.get('x-content-type-options'), 'nosniff');
  t.is(response.headers.get('referrer-policy'), 'no-referrer');
  t.is(response.headers.get('x-frame-options'), 'DENY');
  t.is(response.headers.get('cross-origin-opener-policy'), 'same-origin');
  t.regex(response.headers.get('permissions-policy') ?? '', /camera=\(\)/);
};

test('GET / shows a new identity, uncached, with the security headers', async (t) => {
  const { app, asked } = setup();
  const response = await app.request('/');
  t.is(response.status, 200);
  t.regex(response.headers.get('content-type') ?? '', /^text\/html; charset=utf-8/i);
  t.is(response.headers.get('cache-control'), 'no-store');
  expectSecurityHeaders(t, response);
  const html = await response.text();
  t.regex(html, /<h1>Your secret identity<\/h1>/);
  t.regex(html, /<p class="full-name">Ada Lovelace<\/p>/);
  t.regex(html, /<option value="any" selected>/);
  t.deepEqual(asked, [undefined]);
});

test('the gender choice is passed to the API and preselected', async (t) => {
  const { app, asked } = setup();
  for (const gender of ['female', 'male', 'any', '']) {
    const response = await app.request(`/?gender=${gender}`);
    t.is(response.status, 200, gender);
    const html = await response.text();
    const expected = gender === '' ? 'any' : gender;
    t.regex(html, new RegExp(`<option value="${expected}" selected>`), gender);
  }
  t.deepEqual(asked, ['female', 'male', undefined, undefined]);
});

test('gender takes the api\'s values exactly: FEMALE and " male" are refused as the api refuses them', async (t) => {
  const { app, asked } = setup();
  for (const gender of ['FEMALE', 'Male', '%20male']) {
    const response = await app.request(`/?gender=${gender}`);
    t.is(response.status, 400, gender);
  }
  t.deepEqual(asked, []);
});

test('an unknown gender is a 400 problem that names the parameter, and the API is not called', async (t) => {
  const { app, asked } = setup();
  const response = await app.request('/?gender=robot');
  t.is(response.status, 400);
  t.is(response.headers.get('content-type'), 'application/problem+json');
  expectSecurityHeaders(t, response);
  const body = (await response.json()) as { status: number; detail: string };
  t.is(body.status, 400);
  t.regex(body.detail, /gender must be any, female or male, got "robot"/);
  t.deepEqual(asked, []);
});

test('when the API is down the friendly page is a 503 with Retry-After, and the cause is logged', async (t) => {
  const { app, logs } = setup(down);
  const response = await app.request('/?gender=male');
  t.is(response.status, 503);
  t.is(response.headers.get('retry-after'), String(retryAfterSeconds));
  t.is(response.headers.get('cache-control'), 'no-store');
  t.regex(response.headers.get('content-type') ?? '', /^text\/html/);
  expectSecurityHeaders(t, response);
  const html = await response.text();
  t.regex(html, /Our identity forger is out of the office/);
  t.regex(html, /<a class="button" href="\/\?gender=male">Try again<\/a>/);
  const logged = logs.find((line) => line.level === 'warn');
  t.like(logged, {
    service: 'web',
    cause: 'ECONNREFUSED: connect ECONNREFUSED 10.0.0.1:80',
    attempts: 3,
  });
});

test('an unexpected error is a 500 problem, logged, not a friendly page', async (t) => {
  const { app, logs } = setup(async () => {
    throw new TypeError('a bug');
  });
  const response = await app.request('/');
  t.is(response.status, 500);
  t.is(response.headers.get('content-type'), 'application/problem+json');
  t.true(logs.some((line) => line.level === 'error' && String(line.error).includes('a bug')));
});

test('HEAD / answers like GET without a body', async (t) => {
  const { app } = setup();
  const response = await app.request('/', { method: 'HEAD' });
  t.is(response.status, 200);
  t.is(await response.text(), '');
});

test('the stylesheet is served as CSS with a cache lifetime', async (t) => {
  const { app } = setup();
  const versioned = await app.request(stylesheetHref);
  t.is(versioned.status, 200);
  t.is(versioned.headers.get('content-type'), 'text/css; charset=utf-8');
  t.is(versioned.headers.get('cache-control'), 'public, max-age=31536000, immutable');
  t.is(await versioned.text(), stylesheet);
  expectSecurityHeaders(t, versioned);

  const plain = await app.request('/styles.css');
  t.is(plain.headers.get('cache-control'), 'public, max-age=3600');
  const stale = await app.request('/styles.css?v=0123456789ab');
  t.is(stale.headers.get('cache-control'), 'public, max-age=3600');

  const etag = plain.headers.get('etag');
  t.truthy(etag);
  const revalidated = await app.request('/styles.css', {
    headers: { 'if-none-match': etag ?? '' },
  });
  t.is(revalidated.status, 304);
});

test('the stylesheet shows a visible focus ring', (t) => {
  t.regex(stylesheet, /:focus-visible\s*\{[^}]*outline:\s*3px solid/);
});

test('/healthz and /readyz answer 200 without calling the API', async (t) => {
  const { app, asked } = setup(down);
  for (const path of ['/healthz', '/readyz']) {
    const response = await app.request(path);
    t.is(response.status, 200, path);
    t.deepEqual(await response.json(), { status: 'ok' }, path);
    expectSecurityHeaders(t, response);
  }
  t.deepEqual(asked, []);
});

test('/metrics exposes request counts by route template, never by raw path', async (t) => {
  const { app } = setup();
  await app.request('/?gender=female');
  await app.request('/no/such/page');
  const response = await app.request('/metrics');
  t.is(response.status, 200);
  t.regex(response.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  const text = await response.text();
  t.regex(text, /http_requests_total\{[^}]*route="\/"[^}]*status="200"[^}]*\} 1/);
  t.regex(text, /http_requests_total\{[^}]*route="unmatched"[^}]*status="404"[^}]*\} 1/);
  t.false(text.includes('/no/such/page'));
  t.regex(text, /http_request_duration_seconds_bucket\{/);
  t.regex(text, /service="web"/);
});

test('an unknown path is a 404 problem with the security headers', async (t) => {
  const { app } = setup();
  const response = await app.request('/no/such/page');
  t.is(response.status, 404);
  t.is(response.headers.get('content-type'), 'application/problem+json');
  expectSecurityHeaders(t, response);
  t.like(await response.json(), { status: 404, title: 'Not Found' });
});

test('another method on a path the web serves is 405 with Allow, with the security headers', async (t) => {
  const { app, asked } = setup();
  for (const path of ['/', '/styles.css', '/healthz', '/readyz', '/metrics']) {
    const response = await app.request(path, { method: 'POST' });
    t.is(response.status, 405, path);
    t.is(response.headers.get('allow'), 'GET, HEAD', path);
  }
  expectSecurityHeaders(t, await app.request('/', { method: 'PUT' }));
  t.deepEqual(asked, [], 'the API is not called');
  t.is((await app.request('/', { method: 'HEAD' })).status, 200);
});

test('a browser gets HTML error pages for an unknown path and a bad request; API clients keep problem+json', async (t) => {
  const { app } = setup();
  const browser = 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8';
  const missing = await app.request('/no/such/<page>', { headers: { accept: browser } });
  t.is(missing.status, 404);
  t.regex(missing.headers.get('content-type') ?? '', /^text\/html/);
  expectSecurityHeaders(t, missing);
  const page = await missing.text();
  t.regex(page, /<h2 id="notice-title">404 Not Found<\/h2>/);
  t.regex(page, /no route for \/no\/such\/%3Cpage%3E|no route for \/no\/such\/&lt;page&gt;/);
  t.notRegex(page, /<page>/, 'the path is escaped');
  t.regex(page, /href="\/"/);
  const bad = await app.request('/?gender=robot', { headers: { accept: browser } });
  t.is(bad.status, 400);
  t.regex(bad.headers.get('content-type') ?? '', /^text\/html/);
  t.regex(await bad.text(), /gender must be any, female or male, got &quot;robot&quot;/);
  for (const accept of ['application/json', 'application/problem+json, text/html', '*/*', '']) {
    const response = await app.request('/no/such/page', { headers: accept ? { accept } : {} });
    t.is(response.headers.get('content-type'), 'application/problem+json', `Accept: ${accept}`);
  }
});
