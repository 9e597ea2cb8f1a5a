import { readFileSync } from 'node:fs';

/** Names a source file reads, found by a pattern whose first group is the name. */
export const namesRead = (file: string, pattern: RegExp) =>
  new Set([...readFileSync(file, 'utf8').matchAll(pattern)].map((match) => match[1] as string));

/** How the functions read their configuration (functions/lib/src/config.ts readers). */
const configReaders = /\b(?:integer|url|text|oneOf)\(\s*env,\s*'([A-Z0-9_]+)'/g;

/** Environment variables each function reads, taken from its source. */
export const functionEnvironment = {
  api: namesRead('functions/api/src/server.ts', configReaders),
  web: namesRead('functions/web/src/config.ts', configReaders),
} as const;

/** libpq's own variables, honoured by psql and by node-postgres (the functions' driver). */
export const libpqVariables = new Set([
  'PGHOST',
  'PGPORT',
  'PGUSER',
  'PGPASSWORD',
  'PGDATABASE',
  'PGSSLMODE',
]);
