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
