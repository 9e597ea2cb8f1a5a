/**
 * Bundles each function (and the seeder) into one ESM file for production: fast cold start,
 * no node_modules in the image. Output: dist/api/server.mjs, dist/web/server.mjs,
 * dist/db-seed/seed.mjs (+ its data/*.csv).
 */
import { cpSync, mkdirSync, rmSync } from 'node:fs';
import { build } from 'esbuild';

/** Bundle entry points; Dockerfiles, tests and benchmarks refer to the outputs. */
export const bundles = {
  api: { entry: 'functions/api/src/server.ts', output: 'dist/api/server.mjs' },
  web: { entry: 'functions/web/src/server.ts', output: 'dist/web/server.mjs' },
  seed: { entry: 'db-seed/src/cli.ts', output: 'dist/db-seed/seed.mjs' },
} as const;

const isMain = import.meta.url === `file://${process.argv[1]}`;
if (isMain) {
  rmSync('dist', { recursive: true, force: true });
  for (const [name, bundle] of Object.entries(bundles)) {
    const started = performance.now();
    const result = await build({
      entryPoints: [bundle.entry],
      outfile: bundle.output,
      bundle: true,
      platform: 'node',
      target: 'node24',
      format: 'esm',
      minify: true,
      sourcemap: 'linked',
      legalComments: 'linked',
      // pg loads pg-native only when asked to; it is not installed.
      external: ['pg-native'],
      // Bundled CommonJS dependencies still call require().
      banner: {
        js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);",
      },
      metafile: true,
      logLevel: 'warning',
    });
    const bytes = Object.values(result.metafile.outputs).reduce(
      (sum, output) => sum + output.bytes,
      0,
    );
    console.log(
      `built ${name}: ${bundle.output} (${Math.round(bytes / 1024)} KiB with map) in ${Math.round(performance.now() - started)} ms`,
    );
  }
  mkdirSync('dist/db-seed/data', { recursive: true });
  cpSync('db-seed/data', 'dist/db-seed/data', { recursive: true });
}
