import { readFileSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import test from 'ava';
import { bundles } from '../scripts/build.ts';

// No Docker engine runs here: these checks keep the Dockerfile and the build script in step.
const dockerfile = readFileSync('functions/Dockerfile', 'utf8');
const lines = dockerfile.split('\n');
const instructions = (keyword: string, text = dockerfile) =>
  text
    .split('\n')
    .filter((line) => line.startsWith(`${keyword} `))
    .map((line) => line.slice(keyword.length + 1));
const stage = (name: string) => {
  const start = lines.findIndex((line) => line.endsWith(` AS ${name}`));
  const end = lines.findIndex((line, index) => index > start && line.startsWith('FROM '));
  return lines.slice(start, end === -1 ? undefined : end).join('\n');
};

test('the base image is an official Node 24+ slim image, named once', (t) => {
  const args = instructions('ARG');
  t.is(args.length, 1);
  const match = /^NODE_IMAGE=node:(\d+)-slim$/.exec(args[0] ?? '');
  t.truthy(match);
  t.true(Number(match?.[1]) >= 24);
  const image = '$' + '{NODE_IMAGE}';
  t.deepEqual(
    instructions('FROM').filter((from) => from.startsWith('$')),
    [`${image} AS build`, `${image} AS runtime`],
  );
});

test('the runtime stage runs as the non-root node user and needs no node_modules', (t) => {
  t.regex(stage('runtime'), /^USER node$/m);
  for (const name of ['api', 'web', 'seed']) {
    t.true(stage(name).startsWith('FROM runtime AS'), name);
    t.false(/node_modules|USER root/.test(stage(name)), name);
  }
});

for (const name of ['api', 'web', 'seed'] as const) {
  test(`the ${name} image runs the bundle scripts/build.ts writes`, (t) => {
    const output = bundles[name].output;
    t.true(stage(name).includes(`COPY --from=build /src/${dirname(output)}/ ./`));
    t.true(stage(name).includes(`CMD ["node", "${basename(output)}"]`));
  });
}
