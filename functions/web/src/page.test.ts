import test from 'ava';
import type { Identity } from './api-client.ts';
import { escapeHtml, identityPage, unavailablePage } from './page.ts';
import { stylesheetHref } from './styles.ts';

const ada: Identity = {
  firstName: 'Ada',
  lastName: 'Lovelace',
  fullName: 'Ada Lovelace',
  gender: 'female',
};

test('escapeHtml escapes every character that could end text or an attribute', (t) => {
  t.is(
    escapeHtml(`<a href="x" title='y'>&</a>`),
    '&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;&lt;/a&gt;',
  );
  t.is(escapeHtml("O'Brien"), 'O&#39;Brien');
});

test('the page shows the full name prominently and each part of the identity', (t) => {
  const html = identityPage(ada, 'any');
  t.regex(html, /<h1>Your secret identity<\/h1>/);
  t.regex(html, /<p class="full-name">Ada Lovelace<\/p>/);
  t.regex(html, /<dt>First name<\/dt>\s*<dd>Ada<\/dd>/);
  t.regex(html, /<dt>Last name<\/dt>\s*<dd>Lovelace<\/dd>/);
  t.regex(html, /<dt>Gender<\/dt>\s*<dd>Female<\/dd>/);
});

test('names from the API cannot inject markup', (t) => {
  const html = identityPage(
    {
      firstName: '<script>alert(1)</script>',
      lastName: '"><img src=x onerror=alert(1)>',
      fullName: "<b>O'Brien</b>",
      gender: 'male',
    },
    'male',
  );
  t.false(html.includes('<script'));
  t.false(html.includes('<img'));
  t.false(html.includes('<b>'));
  t.true(html.includes('&lt;script&gt;alert(1)&lt;/script&gt;'));
  t.true(html.includes('&lt;b&gt;O&#39;Brien&lt;/b&gt;'));
});

test('the document is English, scales on phones, has a main landmark and links its stylesheet', (t) => {
  const html = identityPage(ada, 'any');
  t.regex(html, /^<!doctype html>\n<html lang="en">/);
  t.regex(html, /<meta name="viewport" content="width=device-width, initial-scale=1">/);
  t.regex(html, /<main>[\s\S]*<\/main>/);
  t.true(html.includes(`<link rel="stylesheet" href="${stylesheetHref}">`));
});

test('the page ships no script and no inline style, so the strict CSP holds', (t) => {
  for (const html of [identityPage(ada, 'female'), unavailablePage('male')]) {
    t.false(/<script/i.test(html));
    t.false(/\sstyle=/i.test(html));
    t.false(/<style/i.test(html));
    t.false(/\son[a-z]+=/i.test(html));
  }
});

test('the form is a labelled GET to / with a submit button', (t) => {
  const html = identityPage(ada, 'any');
  t.regex(html, /<form method="get" action="\/">/);
  t.regex(html, /<label for="gender">Gender<\/label>\s*<select id="gender" name="gender">/);
  t.regex(html, /<button type="submit">Give me another identity<\/button>/);
  for (const [value, label] of [
    ['any', 'Any'],
    ['female', 'Female'],
    ['male', 'Male'],
  ]) {
    t.regex(html, new RegExp(`<option value="${value}"( selected)?>${label}</option>`));
  }
});

test('the current gender choice is preselected, and only that one', (t) => {
  for (const choice of ['any', 'female', 'male'] as const) {
    const html = identityPage(ada, choice);
    const selected = [...html.matchAll(/<option value="([a-z]+)" selected>/g)].map((m) => m[1]);
    t.deepEqual(selected, [choice]);
  }
});

test('the error page is friendly and its "Try again" link keeps the choice', (t) => {
  const html = unavailablePage('female');
  t.regex(html, /<html lang="en">/);
  t.regex(html, /<main>/);
  t.regex(html, /Our identity forger is out of the office/);
  t.regex(html, /<a class="button" href="\/\?gender=female">Try again<\/a>/);
  t.regex(unavailablePage('any'), /<a class="button" href="\/">Try again<\/a>/);
});
