import test from 'ava';
import type { Browser } from 'playwright-core';
import { consoleProblems, launchChromium } from './helpers/chromium.ts';
import { createNamesDatabase } from './helpers/names-database.ts';
import { startPostgres, type TestPostgres } from './helpers/postgres.ts';
import { type Stack, startStack } from './helpers/stack.ts';

let server: TestPostgres;
let stack: Stack;
let browser: Browser;

test.before(async () => {
  server = await startPostgres();
  const { readerUrl } = await createNamesDatabase(server);
  stack = await startStack({ databaseUrl: readerUrl });
  browser = await launchChromium();
});

test.after.always(async () => {
  await browser?.close();
  await stack?.stop();
  server?.destroy();
});

test('the page shows an identity, another one on request, without console errors', async (t) => {
  const context = await browser.newContext();
  const page = await context.newPage();
  const problems = consoleProblems(page);

  // The edge routes "localhost" to the page, as it does for a person's browser.
  const url = stack.edgeUrl.replace('127.0.0.1', 'localhost');
  const response = await page.goto(`${url}/`);
  t.is(response?.status(), 200);
  t.is(await page.title(), 'Your secret identity');
  t.is(await page.getAttribute('html', 'lang'), 'en');
  t.is(await page.locator('h1').textContent(), 'Your secret identity');

  const names = new Set<string>();
  const readName = async () => (await page.locator('.full-name').textContent())?.trim() ?? '';
  names.add(await readName());
  t.regex([...names][0] ?? '', /^\p{L}[\p{L}' -]* \p{L}[\p{L}' -]*$/u);

  // Ask for another one until the name changes (each is random; a repeat is possible but rare).
  for (let attempt = 0; attempt < 5 && names.size < 2; attempt++) {
    await page.getByRole('button', { name: 'Give me another identity' }).click();
    await page.waitForLoadState('load');
    names.add(await readName());
  }
  t.true(names.size >= 2, `saw ${[...names].join(', ')}`);

  // The gender choice is a labelled control and is honoured.
  await page.getByLabel('Gender').selectOption('female');
  await page.getByRole('button', { name: 'Give me another identity' }).click();
  await page.waitForLoadState('load');
  t.true(page.url().includes('gender=female'));
  t.is(await page.getByLabel('Gender').inputValue(), 'female');

  t.deepEqual(problems, [], 'no console errors or CSP violations');
  await context.close();
});

test('the page works with JavaScript disabled', async (t) => {
  const context = await browser.newContext({ javaScriptEnabled: false });
  const page = await context.newPage();
  const url = stack.edgeUrl.replace('127.0.0.1', 'localhost');
  await page.goto(`${url}/?gender=male`);
  const before = await page.locator('.full-name').textContent();
  t.truthy(before);
  await page.getByRole('button', { name: 'Give me another identity' }).click();
  await page.waitForLoadState('load');
  t.true(page.url().includes('gender=male'));
  t.truthy(await page.locator('.full-name').textContent());
  await context.close();
});
