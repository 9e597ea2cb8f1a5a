import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';

/** Every shell script the project ships or runs, checked by the real shellcheck. */
const scripts = [
  '.ci/run',
  ...['chart/files/postgres', 'chart/files/backup'].flatMap((directory) =>
    readdirSync(directory)
      .filter((file) => file.endsWith('.sh'))
      .map((file) => join(directory, file)),
  ),
];

test('the shell scripts are shellcheck-clean', (t) => {
  t.true(scripts.length >= 7, `found ${scripts.join(', ')}`);
  const result = spawnSync('shellcheck', ['--external-sources', '--severity=style', ...scripts], {
    encoding: 'utf8',
  });
  if (result.error)
    throw new Error(
      `shellcheck could not run (${result.error.message}): install it (apt-get install shellcheck)`,
    );
  t.is(result.status, 0, result.stdout);
});
