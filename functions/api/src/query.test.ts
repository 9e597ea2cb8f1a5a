import test from 'ava';
import { HTTPException } from 'hono/http-exception';
import { parseNameQuery } from './query.ts';

const parse = (query: string) => parseNameQuery(new URLSearchParams(query));

test('valid parameters are parsed', (t) => {
  t.deepEqual(parse(''), { weighted: false });
  t.deepEqual(parse('gender=male&count=100&seed=abc&weighted=true'), {
    gender: 'male',
    count: 100,
    seed: 'abc',
    weighted: true,
  });
});

const rejected = [
  ['gender=robot', /gender must be one of female, male/],
  ['count=0', /count must be an integer from 1 to 100/],
  ['count=101', /count must be an integer from 1 to 100/],
  ['count=2.5', /count must be an integer/],
  ['count=', /count must be an integer/],
  ['weighted=yes', /weighted must be true or false/],
  ['seed=', /seed must be 1 to 128 characters/],
  [`seed=${'x'.repeat(129)}`, /seed must be 1 to 128 characters/],
  ['colour=red', /unknown parameter "colour"/],
  ['count=1&count=2', /"count" is given more than once/],
] as const;

for (const [query, message] of rejected) {
  test(`"${query.slice(0, 30)}" is rejected with a message naming the parameter`, (t) => {
    const error = t.throws(() => parse(query), { instanceOf: HTTPException });
    t.is(error?.status, 400);
    t.regex(error?.message ?? '', message);
  });
}

test('seed length counts characters, not UTF-16 units: 128 emoji are accepted, 129 are not', (t) => {
  const emoji = '\u{1F575}'; // a detective: two UTF-16 units, one character
  t.is(parse(`seed=${encodeURIComponent(emoji.repeat(128))}`).seed, emoji.repeat(128));
  const error = t.throws(() => parse(`seed=${encodeURIComponent(emoji.repeat(129))}`), {
    instanceOf: HTTPException,
  });
  t.regex(error?.message ?? '', /seed must be 1 to 128 characters, got 129/);
});
