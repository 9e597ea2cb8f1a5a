/**
 * Builds kube-apiserver, kube-controller-manager, kube-scheduler, kubelet and kube-proxy from
 * the Go module proxy. k8s.io/kubernetes replaces its ~31 staging modules with ./staging
 * folders its module zip lacks, so a wrapper module requires it and points each staging module
 * at its published v0.<minor>.<patch> release instead. Two deliberate differences from an
 * upstream build: the `providerless` tag (no cloud-provider code), and a kubelet that only
 * warns about kernel settings it would otherwise rewrite on the shared VM (kernel.panic,
 * kernel.panic_on_oops, vm.overcommit_memory, ...).
 */
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import type { Action } from '../lib/action.ts';
import { goEnvironment } from '../lib/go.ts';
import { HarnessError, output, run, runLong } from '../lib/run.ts';
import { cacheDirectory, version } from '../lib/settings.ts';

export const kubernetesComponents = [
  'kube-apiserver',
  'kube-controller-manager',
  'kube-scheduler',
  'kubelet',
  'kube-proxy',
] as const;

const kubernetesVersion = () => version('KUBERNETES_VERSION');
const root = () => join(cacheDirectory, 'kubernetes', `v${kubernetesVersion()}`);
/** Folder of the built binaries (exists only once all of them are built). */
export const kubernetesBin = () => join(root(), 'bin');
export const kubernetesBinary = (name: (typeof kubernetesComponents)[number]) =>
  join(kubernetesBin(), name);

/** The kubelet's one source change: warn about kernel settings instead of changing them. */
const kubeletPatch = {
  file: 'pkg/kubelet/cm/container_manager_linux.go',
  from: '\tb := KernelTunableModify\n',
  to: '\tb := KernelTunableWarn\n',
};

const build = async () => {
  const v = kubernetesVersion();
  const [major, minor, patch] = v.split('.');
  const work = join(root(), 'build');
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const env = goEnvironment();
  console.log(`      downloading k8s.io/kubernetes@v${v} from the Go module proxy`);
  const downloaded = JSON.parse(
    output('go', ['mod', 'download', '-json', `k8s.io/kubernetes@v${v}`], {
      cwd: work,
      env,
      what: `go mod download k8s.io/kubernetes@v${v}`,
      fix: 'check that the Go module proxy answers (go env GOPROXY) and that the version exists',
    }),
  ) as { Dir: string; GoMod: string };
  const upstreamMod = readFileSync(downloaded.GoMod, 'utf8');
  const staging = [...upstreamMod.matchAll(/^\s+(k8s\.io\/[\w-]+) => \.\/staging\//gm)].map(
    (match) => match[1] as string,
  );
  if (staging.length < 20) {
    throw new HarnessError(
      `found only ${staging.length} staging modules in k8s.io/kubernetes@v${v}'s go.mod`,
    );
  }
  const goDirective = /^go (\S+)$/m.exec(upstreamMod)?.[1] ?? '1.25.0';

  // A writable copy of the module with the kubelet patch; the wrapper replaces the original.
  const source = join(work, 'kubernetes');
  cpSync(downloaded.Dir, source, { recursive: true });
  run('chmod', ['-R', 'u+w', source]);
  const patched = join(source, kubeletPatch.file);
  const text = readFileSync(patched, 'utf8');
  if (!text.includes(kubeletPatch.from)) {
    throw new HarnessError(
      `${kubeletPatch.file} of v${v} no longer contains "${kubeletPatch.from.trim()}"`,
      'look at setupNode() in that file and adapt kubeletPatch in e2e/actions/kubernetes-binaries.ts',
    );
  }
  writeFileSync(patched, text.replace(kubeletPatch.from, kubeletPatch.to));

  writeFileSync(
    join(work, 'go.mod'),
    [
      'module secretid.local/kubernetes-build',
      '',
      `go ${goDirective}`,
      '',
      `require k8s.io/kubernetes v${v}`,
      '',
      'replace k8s.io/kubernetes => ./kubernetes',
      '',
      'replace (',
      ...staging.map((module) => `\t${module} => ${module} v0.${minor}.${patch}`),
      ')',
      '',
    ].join('\n'),
  );
  writeFileSync(
    join(work, 'tools.go'),
    [
      '//go:build tools',
      '',
      'package build',
      '',
      'import (',
      ...kubernetesComponents.map((name) => `\t_ "k8s.io/kubernetes/cmd/${name}"`),
      ')',
      '',
    ].join('\n'),
  );
  console.log(
    `      resolving dependencies (${staging.length} staging modules at v0.${minor}.${patch})`,
  );
  await runLong('go', ['mod', 'tidy'], { what: 'go mod tidy', cwd: work, env });

  const versionFlags = ['k8s.io/component-base/version', 'k8s.io/client-go/pkg/version'].flatMap(
    (pkg) => [
      `-X ${pkg}.gitMajor=${major}`,
      `-X ${pkg}.gitMinor=${minor}`,
      `-X ${pkg}.gitVersion=v${v}`,
      `-X ${pkg}.gitTreeState=clean`,
      `-X ${pkg}.buildDate=1970-01-01T00:00:00Z`,
    ],
  );
  const out = join(work, 'bin');
  mkdirSync(out);
  console.log(
    '      compiling (about 10 minutes cold on 2 cores, a minute when the Go build cache is warm)',
  );
  await runLong(
    'nice',
    [
      '-n',
      '10',
      'go',
      'build',
      '-p',
      '2',
      '-trimpath',
      '-tags',
      'providerless,notest',
      '-ldflags',
      ['-s', '-w', ...versionFlags].join(' '),
      '-o',
      `${out}/`,
      ...kubernetesComponents.map((name) => `k8s.io/kubernetes/cmd/${name}`),
    ],
    { what: `go build of Kubernetes v${v}`, cwd: work, env },
  );
  for (const name of kubernetesComponents) {
    const reported = output(join(out, name), ['--version']);
    if (!reported.includes(`v${v}`)) {
      throw new HarnessError(`${name} reports "${reported}", expected v${v}`);
    }
    chmodSync(join(out, name), 0o755);
  }
  rmSync(kubernetesBin(), { recursive: true, force: true });
  renameSync(out, kubernetesBin());
  rmSync(work, { recursive: true, force: true });
};

export const kubernetesBinaries: Action = {
  name: 'kubernetes',
  description: `build Kubernetes v${kubernetesVersion()} from the Go module proxy (cached by version)`,
  up: async () => {
    if (kubernetesComponents.every((name) => existsSync(kubernetesBinary(name)))) {
      console.log(`      cached in ${kubernetesBin()}`);
      return;
    }
    await build();
  },
};
