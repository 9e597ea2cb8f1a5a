/**
 * The Go toolchain's environment for every build of the harness: module and build caches in
 * the harness cache (so a second `up` compiles nothing), static binaries, the machine's Go.
 */
import { join } from 'node:path';
import { cacheDirectory } from './settings.ts';

export const goEnvironment = (): NodeJS.ProcessEnv => ({
  ...process.env,
  GOMODCACHE: join(cacheDirectory, 'go', 'mod'),
  GOCACHE: join(cacheDirectory, 'go', 'build'),
  GOFLAGS: '-mod=mod',
  GOTOOLCHAIN: 'local',
  CGO_ENABLED: '0',
  GOWORK: 'off',
});
