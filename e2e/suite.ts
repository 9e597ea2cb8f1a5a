/**
 * The cluster suite, as CI and `npm test` run it: bring the test cluster up (from the build
 * cache when it is warm), run the e2e tests against it (ava, e2e/ava.config.js), and always
 * take it down again; print the duration of each phase. Fails when a phase fails, a test
 * fails, or `down` finds something left behind or a packet the egress guard refused.
 *
 *   npm run test:cluster            (root; part of npm test)
 *   SECRETID_E2E_KEEP=1 npm run test:cluster   keeps the cluster up afterwards, to look at it
 */
import { spawnSync } from 'node:child_process';
import { repositoryRoot } from './lib/settings.ts';

const phases: Array<{ name: string; seconds: number; ok: boolean }> = [];
const phase = (name: string, command: string[]) => {
  const started = Date.now();
  console.log(`\n=== ${name}: ${command.join(' ')}`);
  const result = spawnSync(command[0] as string, command.slice(1), {
    cwd: repositoryRoot,
    stdio: 'inherit',
  });
  const ok = result.status === 0;
  phases.push({ name, seconds: (Date.now() - started) / 1000, ok });
  return ok;
};

const node = process.execPath;
const up = phase('cluster up', [node, 'e2e/cluster.ts', 'up']);
const tests =
  up &&
  phase('e2e tests', [
    node,
    'node_modules/ava/entrypoints/cli.js',
    '--config',
    'e2e/ava.config.js',
  ]);
const keep = process.env.SECRETID_E2E_KEEP === '1';
const down = keep ? true : phase('cluster down', [node, 'e2e/cluster.ts', 'down']);

console.log('\ncluster suite phases:');
for (const { name, seconds, ok } of phases) {
  console.log(
    `  ${ok ? 'ok    ' : 'FAILED'} ${name.padEnd(14)} ${seconds.toFixed(1).padStart(7)} s`,
  );
}
if (keep)
  console.log(
    '  (SECRETID_E2E_KEEP=1: the cluster is still up; npm run cluster -- down removes it)',
  );
process.exit(up && tests && down ? 0 : 1);
