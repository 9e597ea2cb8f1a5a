import test from 'ava';
import { localHosts } from '../scripts/local-hosts.ts';
import { createNamesDatabase } from './helpers/names-database.ts';
import { startPostgres, type TestPostgres } from './helpers/postgres.ts';
import { type Stack, startStack } from './helpers/stack.ts';

let server: TestPostgres;
let stack: Stack;

test.before(async () => {
  server = await startPostgres();
  const { readerUrl } = await createNamesDatabase(server);
  stack = await startStack({
    databaseUrl: readerUrl,
    // Short refresh and staleness so the outage test runs in seconds.
    apiEnv: {
      NAMES_REFRESH_SECONDS: '1',
      NAMES_MAX_STALENESS_SECONDS: '2',
      DB_CONNECT_TIMEOUT_MS: '500',
    },
  });
});

test.after.always(async () => {
  await stack?.stop();
  server?.destroy();
});

test.serial('the api answers through the edge by Host header', async (t) => {
  const response = await stack.get(localHosts.api, '/randomName?gender=male');
  t.is(response.status, 200);
  const identity = await response.json();
  t.is(identity.gender, 'male');
  t.is(identity.fullName, `${identity.firstName} ${identity.lastName}`);
});

test.serial(
  'the page answers for web.secretid and localhost, an unknown host gets 404',
  async (t) => {
    for (const host of [localHosts.web, 'localhost:8080']) {
      const response = await stack.get(host, '/');
      t.is(response.status, 200, host);
      t.regex(await response.text(), /Your secret identity/);
    }
    const unknown = await stack.get('evil.example', '/');
    t.is(unknown.status, 404);
    t.regex(await unknown.text(), /no site for this Host header/);
  },
);

test.serial('seeded requests are reproducible across processes', async (t) => {
  const first = await (await stack.get(localHosts.api, '/randomName?seed=q-branch&count=5')).json();
  const second = await (
    await stack.get(localHosts.api, '/randomName?seed=q-branch&count=5')
  ).json();
  t.deepEqual(first, second);
  t.is(first.names.length, 5);
});

test.serial('database down: fast 503 problems, then service resumes by itself', async (t) => {
  server.stop();
  try {
    // Wait out the staleness bound, then every request must fail fast with a problem document.
    let response = await stack.get(localHosts.api, '/randomName');
    const deadline = Date.now() + 10_000;
    while (response.status === 200 && Date.now() < deadline) {
      await response.text();
      await new Promise((resolve) => setTimeout(resolve, 200));
      response = await stack.get(localHosts.api, '/randomName');
    }
    t.is(response.status, 503);
    t.is(response.headers.get('content-type'), 'application/problem+json');
    const detail = (await response.json()).detail as string;
    t.regex(detail, /names database is unavailable and the names held are too old/);
    // A real driver error (connection refused, with address and port) stays in the log.
    const readiness = await stack.get(localHosts.api, '/readyz');
    const readyBody = await readiness.text();
    t.is(readiness.status, 503);
    for (const body of [detail, readyBody])
      t.notRegex(body, /ECONNREFUSED|127\.0\.0\.1|secretid_reader|password/, body);
    const started = performance.now();
    const again = await stack.get(localHosts.api, '/randomName');
    t.is(again.status, 503);
    await again.text();
    t.true(performance.now() - started < 1000, 'a request during the outage does not hang');
    const page = await stack.get(localHosts.web, '/');
    t.is(page.status, 503);
    t.regex(await page.text(), /<html/i);
    t.is((await stack.get(localHosts.api, '/healthz')).status, 200, 'liveness stays up');
  } finally {
    server.start();
  }
  const deadline = Date.now() + 15_000;
  let status = 0;
  while (Date.now() < deadline) {
    const response = await stack.get(localHosts.api, '/randomName');
    status = response.status;
    await response.text();
    if (status === 200) break;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  t.is(status, 200, 'the api serves again after the database returns');
  t.is(stack.api.child.exitCode, null, 'the api never crashed');
});

test.serial('SIGTERM lets the api exit 0 and logs JSON lines', async (t) => {
  const code = await stack.api.stop();
  t.is(code, 0);
  const lines = stack.api.output.filter((line) => line.startsWith('{'));
  t.true(lines.length > 0);
  for (const line of lines) t.notThrows(() => JSON.parse(line));
  t.true(lines.some((line) => JSON.parse(line).message === 'stopped'));
});
