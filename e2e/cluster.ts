/**
 * The test cluster: `up` builds (or takes from the cache) and starts a two-node Kubernetes on
 * this machine, `down` removes all of it and proves it, `status` says what runs and how to
 * reach it.
 *
 *   npm run cluster -- up | down | status
 *
 * Needs root (namespaces, iptables, cgroups). Folders: SECRETID_E2E_CACHE (builds, default
 * /var/cache/secretid-e2e) and SECRETID_E2E_STATE (the running cluster, /var/lib/secretid-e2e).
 */
import { existsSync } from 'node:fs';
import { requireTool } from '../scripts/tools.ts';
import { addons } from './actions/addons.ts';
import { controlPlane } from './actions/control-plane.ts';
import { debianPackages } from './actions/debian-packages.ts';
import { egressGuard } from './actions/egress-guard.ts';
import { goBinaries, goBinariesAction } from './actions/go-binaries.ts';
import { hostState } from './actions/host-state.ts';
import { images } from './actions/images.ts';
import { knative } from './actions/knative.ts';
import { kubernetesBinaries } from './actions/kubernetes-binaries.ts';
import { network } from './actions/network.ts';
import { networkPolicy } from './actions/network-policy.ts';
import { nodesAction } from './actions/nodes.ts';
import { pki } from './actions/pki.ts';
import { traefik } from './actions/traefik-files.ts';
import { wheels } from './actions/wheels.ts';
import { type Action, runDown, runUp } from './lib/action.ts';
import { HarnessError, succeeds } from './lib/run.ts';
import {
  apiServerUrl,
  cacheDirectory,
  nodes,
  paths,
  stateDirectory,
  version,
} from './lib/settings.ts';

const kubectl = () => requireTool('kubectl');

/** Programs the harness runs that Debian provides; .ci/run installs them. */
const hostCommands: Record<string, string> = {
  iptables: 'iptables',
  'iptables-save': 'iptables',
  ipset: 'ipset',
  conntrack: 'conntrack',
  nsenter: 'util-linux',
  runc: 'runc',
  openssl: 'openssl',
  curl: 'curl',
  gcc: 'gcc',
  go: 'golang (Go 1.26 is on this machine kind)',
  'apt-get': 'apt',
  dpkg: 'dpkg',
  pip: 'python3-pip',
  unzip: 'unzip',
  debootstrap: 'debootstrap',
};

const preflight: Action = {
  name: 'preflight',
  description: 'check this machine has what the harness needs',
  up: () => {
    if (process.getuid?.() !== 0) {
      throw new HarnessError(
        'the cluster harness needs root (network namespaces, iptables, cgroups)',
        'run it as root',
      );
    }
    const missing = Object.entries(hostCommands).filter(
      ([command]) => !succeeds('sh', ['-c', `command -v ${command}`]),
    );
    if (missing.length > 0) {
      throw new HarnessError(
        `missing commands: ${missing.map(([command]) => command).join(', ')}`,
        `apt-get install ${[...new Set(missing.map(([, pkg]) => pkg.split(' ')[0]))].join(' ')} (bash .ci/run does)`,
      );
    }
    for (const plugin of ['bridge', 'host-local', 'portmap', 'loopback']) {
      if (!existsSync(`/usr/lib/cni/${plugin}`)) {
        throw new HarnessError(
          `CNI plugin /usr/lib/cni/${plugin} is missing`,
          'apt-get install containernetworking-plugins',
        );
      }
    }
    kubectl();
    console.log(`      cache ${cacheDirectory}, state ${stateDirectory}`);
  },
};

/** The actions of `up`, in order; `down` runs their `down` in reverse. */
export const actions: Action[] = [
  preflight,
  hostState,
  egressGuard,
  kubernetesBinaries,
  debianPackages,
  goBinaries,
  goBinariesAction(
    ['knativeServing', 'netKourier', 'kn'],
    'knative-binaries',
    'build Knative Serving, net-kourier and kn from the Go module proxy (cached by version)',
  ),
  traefik,
  wheels,
  images,
  pki,
  network,
  controlPlane(kubectl),
  nodesAction(kubectl),
  networkPolicy,
  addons(kubectl),
  knative(kubectl),
];

const status = async () => {
  for (const action of actions) {
    if (action.status) console.log(await action.status());
  }
  console.log(`Kubernetes v${version('KUBERNETES_VERSION')}, API ${apiServerUrl}`);
  console.log(`export KUBECONFIG=${paths.kubeconfig}`);
  console.log(`nodes: ${nodes.map((node) => `${node.name} ${node.address}`).join(', ')}`);
};

const main = async () => {
  const command = process.argv[2];
  switch (command) {
    case 'up':
      await runUp(actions);
      await status();
      return;
    case 'down': {
      const failures = await runDown(actions);
      if (failures.length > 0) {
        throw new HarnessError(
          `down finished with ${failures.length} problem(s):\n${failures.join('\n')}`,
        );
      }
      console.log('down: nothing of the cluster is left');
      return;
    }
    case 'status':
      await status();
      return;
    default:
      throw new HarnessError(
        `unknown command "${command ?? ''}"`,
        'npm run cluster -- up | down | status',
      );
  }
};

main().catch((error) => {
  console.error(`cluster: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
