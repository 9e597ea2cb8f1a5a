/**
 * Programs built with `go install module/package@version` from the Go module proxy, cached by
 * version: CoreDNS (cluster DNS), local-path-provisioner (the default storage class) and
 * kube-router (its network policy controller only).
 */
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Action } from '../lib/action.ts';
import { chartImage } from '../lib/chart.ts';
import { goEnvironment } from '../lib/go.ts';
import { runLong } from '../lib/run.ts';
import { cacheDirectory, version } from '../lib/settings.ts';

interface GoProgram {
  /** The binary's name (the last element of the package path). */
  binary: string;
  /** Package path below the module, '' for the module's root. */
  packagePath: string;
  module: string;
  /** The version, without the leading v. */
  version: () => string;
}

/** The version of a chart image's tag: the stand-in is built at the version the chart names. */
const chartImageTag = (component: string) => () => chartImage(component).tag.replace(/^v/, '');

export const goPrograms = {
  coredns: {
    binary: 'coredns',
    module: 'github.com/coredns/coredns',
    packagePath: '',
    version: () => version('COREDNS_VERSION'),
  },
  localPath: {
    binary: 'local-path-provisioner',
    module: 'github.com/rancher/local-path-provisioner',
    packagePath: '',
    version: () => version('LOCAL_PATH_PROVISIONER_VERSION'),
  },
  kubeRouter: {
    binary: 'kube-router',
    module: 'github.com/cloudnativelabs/kube-router/v2',
    packagePath: '/cmd/kube-router',
    version: () => version('KUBE_ROUTER_VERSION'),
  },
  kubeStateMetrics: {
    binary: 'kube-state-metrics',
    module: 'k8s.io/kube-state-metrics/v2',
    packagePath: '',
    version: chartImageTag('kubeStateMetrics'),
  },
} satisfies Record<string, GoProgram>;

const folder = (program: GoProgram) =>
  join(cacheDirectory, 'go-binaries', `${program.binary}-v${program.version()}`);
export const goBinary = (key: keyof typeof goPrograms) =>
  join(folder(goPrograms[key]), goPrograms[key].binary);

export const goBinaries: Action = {
  name: 'go-binaries',
  description:
    'build CoreDNS, local-path-provisioner and kube-router from the Go module proxy (cached by version)',
  up: async () => {
    for (const [key, program] of Object.entries(goPrograms) as Array<
      [keyof typeof goPrograms, GoProgram]
    >) {
      const spec = `${program.module}${program.packagePath}@v${program.version()}`;
      if (existsSync(goBinary(key))) {
        console.log(`      ${spec} cached`);
        continue;
      }
      const partial = `${folder(program)}.partial`;
      rmSync(partial, { recursive: true, force: true });
      mkdirSync(partial, { recursive: true });
      const started = Date.now();
      // A wrapper module that requires the program's module at its version: unlike
      // `go install pkg@version`, it needs no version list or deprecation look-up, which the
      // proxy refuses for some modules.
      const work = join(partial, 'build');
      mkdirSync(work);
      const pkg = `${program.module}${program.packagePath}`;
      writeFileSync(
        join(work, 'go.mod'),
        `module secretid.local/build\n\ngo 1.24\n\nrequire ${program.module} v${program.version()}\n`,
      );
      writeFileSync(
        join(work, 'tools.go'),
        `//go:build tools\n\npackage build\n\nimport _ "${pkg}"\n`,
      );
      const env = goEnvironment();
      await runLong('go', ['mod', 'tidy'], {
        what: `go mod tidy for ${spec}`,
        cwd: work,
        env,
        fix: `check that the Go module proxy serves ${spec}`,
      });
      await runLong(
        'nice',
        [
          '-n',
          '10',
          'go',
          'build',
          '-trimpath',
          '-ldflags=-s -w',
          '-o',
          join(partial, program.binary),
          pkg,
        ],
        {
          what: `go build ${spec}`,
          cwd: work,
          env,
        },
      );
      rmSync(work, { recursive: true, force: true });
      rmSync(folder(program), { recursive: true, force: true });
      renameSync(partial, folder(program));
      console.log(`      ${spec} built in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    }
  },
};
