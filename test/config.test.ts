import { spawnSync } from 'node:child_process';
import test from 'ava';
import { bundles } from '../scripts/build.ts';
import { requireBundles } from './helpers/stack.ts';

const run = (script: string, env: Record<string, string>) =>
  spawnSync(process.execPath, [script], {
    env: { PATH: process.env.PATH ?? '', ...env },
    encoding: 'utf8',
    timeout: 10_000,
  });

test.before(() => requireBundles());

const cases = [
  [bundles.api.output, {}, /DATABASE_URL is required/],
  [
    bundles.api.output,
    { DATABASE_URL: 'mysql://x' },
    /DATABASE_URL must use postgres: or postgresql:/,
  ],
  [
    bundles.api.output,
    { DATABASE_URL: 'postgres://x/y', PORT: 'eighty' },
    /PORT must be an integer from 1 to 65535, got "eighty"/,
  ],
  [
    bundles.api.output,
    { DATABASE_URL: 'postgres://x/y', LOG_LEVEL: 'loud' },
    /LOG_LEVEL must be one of debug, info, warn, error/,
  ],
  [bundles.web.output, {}, /API_URL is required/],
  [
    bundles.web.output,
    { API_URL: 'http://127.0.0.1:1', API_TIMEOUT_MS: '-5' },
    /API_TIMEOUT_MS must be an integer/,
  ],
] as const;

for (const [script, env, message] of cases) {
  test(`${script} refuses ${JSON.stringify(env)} naming the variable`, (t) => {
    const result = run(script, env);
    t.is(result.status, 2);
    t.regex(result.stderr, /^invalid configuration: /);
    t.regex(result.stderr, message);
  });
}
