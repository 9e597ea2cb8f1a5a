/**
 * Property-based fuzzing of both running functions from their own OpenAPI documents, with
 * schemathesis (PyPI, `npm run tools`): the production bundles against a real PostgreSQL, the
 * document read from the function's /openapi.json. Every check schemathesis has runs: no server
 * error, every response in the document (status, content type, headers, schema), invalid input
 * refused and valid input accepted, other methods refused with 405 and Allow; a request that
 * takes longer than the request timeout is a failure, so a hang fails the test too.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { requireTool } from '../scripts/tools.ts';
import { createNamesDatabase } from './helpers/names-database.ts';
import { startPostgres, type TestPostgres } from './helpers/postgres.ts';
import { type Stack, startStack } from './helpers/stack.ts';

let server: TestPostgres;
let stack: Stack;
let reports: string;

test.before(async () => {
  reports = mkdtempSync(join(tmpdir(), 'secretid-schemathesis-'));
  server = await startPostgres();
  const { readerUrl } = await createNamesDatabase(server);
  stack = await startStack({ databaseUrl: readerUrl });
});

test.after.always(async () => {
  await stack?.stop();
  server?.destroy();
  if (reports) rmSync(reports, { recursive: true, force: true });
});

/** Cases per operation and phase; schemathesis adds its boundary (coverage) cases on top. */
const maxExamples = 100;
/** A response slower than this is a hang. */
const requestTimeoutSeconds = 5;

/** Runs schemathesis against one function and returns its exit code and output. */
const fuzz = (name: string, port: number) =>
  new Promise<{ code: number | null; output: string }>((resolve) => {
    const child = spawn(
      requireTool('schemathesis'),
      [
        'run',
        `http://127.0.0.1:${port}/openapi.json`,
        '--checks',
        'all',
        '--max-examples',
        String(maxExamples),
        '--request-timeout',
        String(requestTimeoutSeconds),
        '--workers',
        '1',
        '--seed',
        '20261202',
        '--no-color',
        // Each run stands alone, reproducible from its seed; nothing is written in the checkout.
        '--generation-database',
        'none',
        '--report-dir',
        join(reports, name),
      ],
      { cwd: reports, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    child.stdout.on('data', (chunk) => {
      output += chunk;
    });
    child.stderr.on('data', (chunk) => {
      output += chunk;
    });
    // Bounded: a run that does not end by itself is killed and fails the test.
    const timer = setTimeout(() => child.kill('SIGKILL'), 240_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });

/** The summary's case count: "Test cases: 512 generated, 512 passed". */
const generatedCases = (output: string) => {
  const match = output.match(/Test cases:\s+(\d+) generated/);
  return match ? Number(match[1]) : 0;
};

for (const name of ['api', 'web'] as const) {
  test.serial(
    `schemathesis finds no server error, no response outside the document and no hang in the ${name}`,
    async (t) => {
      const { code, output } = await fuzz(name, stack[name].port);
      const cases = generatedCases(output);
      console.log(
        `schemathesis ${name}: ${cases} generated cases, exit ${code}\n${output.slice(output.lastIndexOf('SUMMARY'))}`,
      );
      t.is(code, 0, output);
      t.true(cases >= 100, `only ${cases} cases generated:\n${output}`);
      t.notRegex(output, /Server error|Response violates schema|timed out/i);
    },
  );
}
