/**
 * Programs built from the Go module proxy, cached by module and version: CoreDNS (cluster
 * DNS), local-path-provisioner (the storage classes), kube-router (its network policy
 * controller only), kube-state-metrics (at the chart's tag), Knative Serving's five
 * components, net-kourier's controller and the kn CLI.
 *
 * Each is built in a wrapper module that requires the program's module at its version: unlike
 * `go install pkg@version` this needs no version list or deprecation look-up, which the proxy
 * refuses for some modules, and it builds several commands of one module in one go.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Action } from '../lib/action.ts';
import { chartImage } from '../lib/chart.ts';
import { goEnvironment } from '../lib/go.ts';
import { HarnessError, runLong } from '../lib/run.ts';
import { cacheDirectory, repositoryRoot, version } from '../lib/settings.ts';

interface GoProgram {
  module: string;
  /** The module version, without the leading v. */
  version: () => string;
  /** Binary name -> package path below the module ('' for the module's root). */
  binaries: Record<string, string>;
  /** Extra Go environment for this build. */
  environment?: Record<string, string>;
}

/** The version of a chart image's tag: the stand-in is built at the version the chart names. */
const chartImageTag = (component: string) => () => chartImage(component).tag.replace(/^v/, '');

/** knative/platform/versions.env: the project's Knative pins (the deploy reads them too). */
const knativePin = (name: string) => () => {
  const text = readFileSync(join(repositoryRoot, 'knative', 'platform', 'versions.env'), 'utf8');
  const value = new RegExp(`^${name}=(\\S+)$`, 'm').exec(text)?.[1];
  if (!value) throw new HarnessError(`knative/platform/versions.env has no ${name}=`);
  return value;
};
/** Knative's Go modules number release 1.N.P as v0.(N+27).P (serving 1.21.2 is v0.48.2). */
export const knativeModuleVersion = (release: string) => {
  const [major, minor, patch] = release.split('.').map(Number);
  if (major !== 1 || minor === undefined || patch === undefined) {
    throw new HarnessError(`"${release}" is not a Knative release number 1.N.P`);
  }
  return `0.${minor + 27}.${patch}`;
};

export const goPrograms = {
  coredns: {
    module: 'github.com/coredns/coredns',
    version: () => version('COREDNS_VERSION'),
    binaries: { coredns: '' },
  },
  localPath: {
    module: 'github.com/rancher/local-path-provisioner',
    version: () => version('LOCAL_PATH_PROVISIONER_VERSION'),
    binaries: { 'local-path-provisioner': '' },
  },
  kubeRouter: {
    module: 'github.com/cloudnativelabs/kube-router/v2',
    version: () => version('KUBE_ROUTER_VERSION'),
    binaries: { 'kube-router': '/cmd/kube-router' },
  },
  kubeStateMetrics: {
    module: 'k8s.io/kube-state-metrics/v2',
    version: chartImageTag('kubeStateMetrics'),
    binaries: { 'kube-state-metrics': '' },
  },
  knativeServing: {
    module: 'knative.dev/serving',
    version: () => knativeModuleVersion(knativePin('KNATIVE_SERVING_VERSION')()),
    binaries: {
      controller: '/cmd/controller',
      webhook: '/cmd/webhook',
      activator: '/cmd/activator',
      autoscaler: '/cmd/autoscaler',
      queue: '/cmd/queue',
    },
  },
  netKourier: {
    module: 'knative.dev/net-kourier',
    version: () => knativeModuleVersion(knativePin('KNATIVE_NET_KOURIER_VERSION')()),
    binaries: { kourier: '/cmd/kourier' },
  },
  kn: {
    module: 'knative.dev/client',
    version: () => knativeModuleVersion(knativePin('KNATIVE_CLIENT_VERSION')()),
    binaries: { kn: '/cmd/kn' },
    // The proxy serves kn's knative.dev/client-pkg pseudo-version, but the checksum database
    // has no entry for it (404): take it unverified, for this one module only.
    environment: { GONOSUMDB: 'knative.dev/client-pkg' },
  },
} satisfies Record<string, GoProgram>;

type ProgramKey = keyof typeof goPrograms;

const folder = (program: GoProgram) =>
  join(
    cacheDirectory,
    'go-binaries',
    `${program.module.replaceAll('/', '_')}-v${program.version()}`,
  );
/** A built binary: the program's only one, or the one named. */
export const goBinary = (key: ProgramKey, binary?: string) => {
  const program: GoProgram = goPrograms[key];
  const name = binary ?? (Object.keys(program.binaries)[0] as string);
  if (!(name in program.binaries)) throw new HarnessError(`${program.module} builds no ${name}`);
  return join(folder(program), name);
};
/** The module and version of a program, for the README and the images' names. */
export const goProgramVersion = (key: ProgramKey) => goPrograms[key].version();

const build = async (program: GoProgram) => {
  const spec = `${program.module}@v${program.version()}`;
  const partial = `${folder(program)}.partial`;
  rmSync(partial, { recursive: true, force: true });
  const work = join(partial, 'build');
  mkdirSync(work, { recursive: true });
  const packages = Object.values(program.binaries).map((path) => `${program.module}${path}`);
  writeFileSync(
    join(work, 'go.mod'),
    `module secretid.local/build\n\ngo 1.24\n\nrequire ${program.module} v${program.version()}\n`,
  );
  writeFileSync(
    join(work, 'tools.go'),
    `//go:build tools\n\npackage build\n\nimport (\n${packages.map((pkg) => `\t_ "${pkg}"`).join('\n')}\n)\n`,
  );
  const env = { ...goEnvironment(), ...program.environment };
  await runLong('go', ['mod', 'tidy'], {
    what: `go mod tidy for ${spec}`,
    cwd: work,
    env,
    fix: `check that the Go module proxy serves ${spec}`,
  });
  for (const [binary, path] of Object.entries(program.binaries)) {
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
        join(partial, binary),
        `${program.module}${path}`,
      ],
      { what: `go build ${program.module}${path}@v${program.version()}`, cwd: work, env },
    );
  }
  rmSync(work, { recursive: true, force: true });
  rmSync(folder(program), { recursive: true, force: true });
  renameSync(partial, folder(program));
};

/** Builds the programs named (all of them by default) unless cached. */
export const goBinariesAction = (
  keys: ProgramKey[],
  name: string,
  description: string,
): Action => ({
  name,
  description,
  up: async () => {
    for (const key of keys) {
      const program: GoProgram = goPrograms[key];
      const spec = `${program.module}@v${program.version()}`;
      if (Object.keys(program.binaries).every((binary) => existsSync(goBinary(key, binary)))) {
        console.log(`      ${spec} cached`);
        continue;
      }
      const started = Date.now();
      await build(program);
      console.log(
        `      ${spec} (${Object.keys(program.binaries).join(', ')}) built in ${((Date.now() - started) / 1000).toFixed(1)} s`,
      );
    }
  },
});

export const goBinaries = goBinariesAction(
  ['coredns', 'localPath', 'kubeRouter', 'kubeStateMetrics'],
  'go-binaries',
  'build CoreDNS, local-path-provisioner, kube-router and kube-state-metrics from the Go module proxy (cached by version)',
);
