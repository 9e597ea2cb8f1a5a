import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import test from 'ava';

test('the README names every Debian package .ci/run may install', (t) => {
  const script = readFileSync('.ci/run', 'utf8');
  const installed = new Set<string>();
  for (const [, list] of script.matchAll(/packages\+=\(([^)]*)\)/g))
    for (const word of (list ?? '').split(/\s+/))
      if (word && !word.startsWith('"')) installed.add(word);
  // The loop over tools installs each tool's own package.
  const loop = script.match(/for tool in ([^;]+);/);
  for (const word of (loop?.[1] ?? '').split(/\s+/)) if (word) installed.add(word);
  t.true(installed.size > 10, `found ${[...installed].join(', ')}`);
  const readme = readFileSync('README.md', 'utf8');
  const paragraph = readme.slice(
    readme.indexOf('`bash .ci/run` installs'),
    readme.indexOf('## The API'),
  );
  const named = new Set(
    [...paragraph.matchAll(/`([a-z0-9][a-z0-9.+-]*)`/g)].map((m) => m[1] as string),
  );
  for (const name of installed) t.true(named.has(name), `README does not name ${name}`);
});

test("npm ci on the machine's own Node prints no warning: not 85 lines of EBADENGINE, not the install-scripts notice", (t) => {
  // npm as a newcomer runs it: the machine's Node, not the pinned one npm puts first on a
  // script's PATH, and none of the npm_* settings `npm test` hands its children.
  const path = (process.env.PATH ?? '')
    .split(':')
    .filter((entry) => !entry.includes('node_modules'))
    .join(':');
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !name.toLowerCase().startsWith('npm_')),
  );
  const run = (command: string, args: string[]) =>
    spawnSync(command, args, { env: { ...env, PATH: path }, encoding: 'utf8', timeout: 120_000 });
  t.log(
    `npm ${run('npm', ['--version']).stdout.trim()} on Node ${run('node', ['--version']).stdout.trim()}`,
  );
  const install = run('npm', ['ci', '--dry-run', '--no-audit', '--no-fund']);
  t.is(install.status, 0, install.stderr);
  t.notRegex(install.stderr, /npm warn/i, install.stderr.slice(0, 2000));
});
