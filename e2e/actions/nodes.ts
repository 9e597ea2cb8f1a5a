/**
 * The nodes: in each node's network namespace a containerd of its own (own root, state and
 * socket), the images imported into it, a kubelet (own root folder, cgroup root, pod log
 * folder) and a kube-proxy (iptables mode, in the node's namespace, so its rules are the
 * node's). Two kubelets share the VM's kernel, so nothing of one may reach into the other's
 * folders: every path below is per node.
 */
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { basename, join } from 'node:path';
import type { Action } from '../lib/action.ts';
import {
  daemonPid,
  HarnessError,
  logTail,
  output,
  run,
  runLong,
  startDaemon,
  stopDaemon,
  succeeds,
  waitUntil,
} from '../lib/run.ts';
import {
  cacheDirectory,
  clusterDnsAddress,
  clusterDomain,
  clusterName,
  type NodeSettings,
  nodes,
  paths,
  podNetwork,
  version,
} from '../lib/settings.ts';
import { packageBinary } from './debian-packages.ts';
import { imageArchives, imageReferences, pauseImage } from './images.ts';
import { kubernetesBinary } from './kubernetes-binaries.ts';
import { podBridge } from './network.ts';
import { kubeconfigFor, pkiFile, writeKubeconfig } from './pki.ts';

const nodeDirectory = (node: NodeSettings, ...parts: string[]) =>
  join(paths.nodes, node.name, ...parts);
export const containerdSocket = (node: NodeSettings) =>
  nodeDirectory(node, 'containerd', 'containerd.sock');
const cgroupRoot = (node: NodeSettings) => `/${clusterName}-${node.name}`;
/**
 * containerd's root (content, snapshots, metadata) lives in the cache, per node and containerd
 * version: the images imported at one `up` are there at the next, only changed ones imported
 * again. `down` deletes every container first, so only images remain; its state folder (the
 * tasks, the sockets) stays under the node's folder.
 */
const imageStore = (node: NodeSettings) =>
  join(cacheDirectory, 'containerd', version('CONTAINERD_DEB_VERSION'), node.name);
/** The cgroup v1 hierarchies and the v2 one, where each node's cgroup root must exist. */
const cgroupHierarchies = () =>
  readdirSync('/sys/fs/cgroup')
    .map((name) => join('/sys/fs/cgroup', name))
    .filter((path) => existsSync(join(path, 'cgroup.procs')));

/** `ctr` against one node's containerd, in the Kubernetes namespace. */
export const ctr = (node: NodeSettings, args: string[]) =>
  run(
    packageBinary('containerd', 'ctr'),
    ['--address', containerdSocket(node), '--namespace', 'k8s.io', ...args],
    {
      what: `ctr ${args.slice(0, 2).join(' ')} on ${node.name}`,
    },
  );

const writeContainerdConfig = (node: NodeSettings) => {
  const directory = nodeDirectory(node, 'containerd');
  mkdirSync(join(directory, 'cni'), { recursive: true });
  writeFileSync(
    join(directory, 'cni', '10-secretid-e2e.conflist'),
    JSON.stringify(
      {
        cniVersion: '1.0.0',
        name: clusterName,
        plugins: [
          {
            type: 'bridge',
            bridge: podBridge,
            isGateway: true,
            ipMasq: false,
            hairpinMode: true,
            ipam: {
              type: 'host-local',
              ranges: [[{ subnet: node.podCidr, gateway: node.podGateway }]],
              routes: [{ dst: '0.0.0.0/0' }],
              dataDir: nodeDirectory(node, 'cni-ipam'),
            },
          },
          { type: 'portmap', capabilities: { portMappings: true } },
        ],
      },
      null,
      2,
    ),
  );
  writeFileSync(
    join(directory, 'config.toml'),
    `# containerd for ${node.name}, written by e2e/actions/nodes.ts
version = 2
root = "${imageStore(node)}"
state = "${join(directory, 'state')}"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "${containerdSocket(node)}"

[ttrpc]
  address = "${containerdSocket(node)}.ttrpc"

[debug]
  address = "${containerdSocket(node)}.debug"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "${join(directory, 'opt')}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${imageReferences(pauseImage)[0]}"
  # Root here lacks CAP_SYS_RESOURCE: a negative oom_score_adj would fail every sandbox.
  restrict_oom_score_adj = true
  disable_apparmor = true
  enable_selinux = false
  stream_server_address = "127.0.0.1"
  max_container_log_line_size = 16384

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    discard_unpacked_layers = false

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "/usr/sbin/runc"
        SystemdCgroup = false

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "${join(directory, 'cni')}"
    max_conf_num = 1
`,
  );
};

const writeKubeletConfig = (node: NodeSettings) => {
  const directory = nodeDirectory(node, 'kubelet');
  mkdirSync(join(directory, 'pod-logs'), { recursive: true });
  // Pods with dnsPolicy Default get this: a resolver on their own loopback that is not there,
  // so a lookup fails at once instead of being sent off the machine.
  writeFileSync(
    join(directory, 'resolv.conf'),
    'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n',
  );
  writeFileSync(
    join(directory, 'config.yaml'),
    `# kubelet for ${node.name}, written by e2e/actions/nodes.ts
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: ${node.address}
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: ${pkiFile('ca.crt')}}
authorization: {mode: Webhook}
tlsCertFile: ${pkiFile(`kubelet-${node.name}-serving.crt`)}
tlsPrivateKeyFile: ${pkiFile(`kubelet-${node.name}-serving.key`)}
containerRuntimeEndpoint: unix://${containerdSocket(node)}
cgroupDriver: cgroupfs
cgroupRoot: ${cgroupRoot(node)}
failCgroupV1: false
failSwapOn: false
protectKernelDefaults: false
clusterDomain: ${clusterDomain}
clusterDNS: [${clusterDnsAddress}]
resolvConf: ${join(directory, 'resolv.conf')}
podLogsDir: ${join(directory, 'pod-logs')}
# Images come from the harness, not a registry: never garbage-collect them.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 100Mi, nodefs.available: 2%, imagefs.available: 2%}
serializeImagePulls: false
rotateCertificates: false
serverTLSBootstrap: false
`,
  );
};

const writeKubeProxyConfig = (node: NodeSettings) => {
  const directory = nodeDirectory(node, 'kube-proxy');
  mkdirSync(directory, { recursive: true });
  writeFileSync(
    join(directory, 'config.yaml'),
    `# kube-proxy for ${node.name}, written by e2e/actions/nodes.ts
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: ${kubeconfigFor('kube-proxy')}}
mode: iptables
clusterCIDR: ${podNetwork}
hostnameOverride: ${node.name}
bindAddress: ${node.address}
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: [${node.address}/32]
iptables: {localhostNodePorts: false}
# 0 leaves the kernel's conntrack settings as they are (they are the VM's, not the node's).
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
`,
  );
};

/** Creates the node's cgroup root in every hierarchy (cpuset needs its cpus and mems filled). */
const createCgroupRoot = (node: NodeSettings) => {
  for (const hierarchy of cgroupHierarchies()) {
    const path = join(hierarchy, cgroupRoot(node));
    mkdirSync(path, { recursive: true });
    if (hierarchy.endsWith('/cpuset')) {
      for (const file of ['cpuset.cpus', 'cpuset.mems']) {
        if (readFileSync(join(path, file), 'utf8').trim() === '') {
          writeFileSync(join(path, file), readFileSync(join(hierarchy, file), 'utf8'));
        }
      }
    }
  }
};

/** Removes the node's cgroups, deepest first; fails only if one still holds a process. */
const removeCgroups = (node: NodeSettings) => {
  const remove = (path: string) => {
    if (!existsSync(path)) return;
    for (const entry of readdirSync(path, { withFileTypes: true })) {
      if (entry.isDirectory()) remove(join(path, entry.name));
    }
    rmdirSync(path);
  };
  for (const hierarchy of cgroupHierarchies()) remove(join(hierarchy, cgroupRoot(node)));
};

const kubectl = (kubectlPath: string, args: string[]) =>
  run(kubectlPath, args, {
    env: { ...process.env, KUBECONFIG: paths.kubeconfig },
    what: `kubectl ${args.join(' ')}`,
  });

const nodeReady = (kubectlPath: string, node: NodeSettings) =>
  run(
    kubectlPath,
    ['get', 'node', node.name, '-o', 'jsonpath={.status.conditions[?(@.type=="Ready")].status}'],
    {
      env: { ...process.env, KUBECONFIG: paths.kubeconfig },
      allowFailure: true,
    },
  ).stdout.trim() === 'True';

const daemons = (node: NodeSettings) => ({
  containerd: `containerd-${node.name}`,
  kubelet: `kubelet-${node.name}`,
  proxy: `kube-proxy-${node.name}`,
});

const startNode = async (node: NodeSettings, kubectlPath: string) => {
  const names = daemons(node);
  writeContainerdConfig(node);
  startDaemon({
    name: names.containerd,
    command: packageBinary('containerd', 'containerd'),
    args: ['--config', nodeDirectory(node, 'containerd', 'config.toml')],
    netns: node.namespace,
    // containerd finds its shim next to itself.
    env: { PATH: `${packageBinary('containerd', '')}:${process.env.PATH}` },
  });
  await waitUntil(
    `containerd on ${node.name}`,
    () =>
      succeeds(packageBinary('containerd', 'ctr'), [
        '--address',
        containerdSocket(node),
        'version',
      ]),
    {
      timeoutMs: 30_000,
    },
  ).catch((error) => {
    throw new HarnessError(`${error.message}\n${logTail(names.containerd)}`);
  });
  // Containers a run that never reached `down` left in the image store belong to no pod now.
  const leftover = removeContainers(node);
  if (leftover > 0)
    console.log(`      ${node.name}: removed ${leftover} container(s) of an earlier run`);
  // Each imported image is labelled with the archive it came from (the archive's name is the
  // digest of its inputs), so a rebuilt image is imported again on a running node too.
  const archiveLabel = 'secretid-e2e.archive';
  const labels = new Map(
    output(packageBinary('containerd', 'ctr'), [
      '--address',
      containerdSocket(node),
      '--namespace',
      'k8s.io',
      'images',
      'list',
    ])
      .split('\n')
      .slice(1)
      .filter(Boolean)
      .map((line) => {
        const columns = line.split(/\s+/);
        return [columns[0] as string, columns.at(-1) as string];
      }),
  );
  for (const { references, archive } of imageArchives()) {
    const label = `${archiveLabel}=${basename(archive)}`;
    if (references.every((reference) => labels.get(reference)?.split(',').includes(label)))
      continue;
    const [own, ...others] = references as [string, ...string[]];
    await runLong(
      packageBinary('containerd', 'ctr'),
      ['--address', containerdSocket(node), '--namespace', 'k8s.io', 'images', 'import', archive],
      { what: `ctr images import ${archive} on ${node.name}` },
    );
    for (const other of others) ctr(node, ['images', 'tag', '--force', own, other]);
    // Pinned images are never garbage-collected by the kubelet.
    for (const reference of references) {
      ctr(node, ['images', 'label', reference, 'io.cri-containerd.pinned=pinned']);
      ctr(node, ['images', 'label', reference, label]);
    }
  }

  createCgroupRoot(node);
  writeKubeletConfig(node);
  writeKubeconfig(kubeconfigFor(`kubelet-${node.name}`), `kubelet-${node.name}`);
  startDaemon({
    name: names.kubelet,
    command: kubernetesBinary('kubelet'),
    args: [
      `--config=${nodeDirectory(node, 'kubelet', 'config.yaml')}`,
      `--kubeconfig=${kubeconfigFor(`kubelet-${node.name}`)}`,
      `--root-dir=${nodeDirectory(node, 'kubelet', 'root')}`,
      `--cert-dir=${nodeDirectory(node, 'kubelet', 'pki')}`,
      `--hostname-override=${node.name}`,
      `--node-ip=${node.address}`,
      '--v=1',
    ],
    netns: node.namespace,
  });
  writeKubeProxyConfig(node);
  startDaemon({
    name: names.proxy,
    command: kubernetesBinary('kube-proxy'),
    args: [`--config=${nodeDirectory(node, 'kube-proxy', 'config.yaml')}`],
    netns: node.namespace,
  });
  await waitUntil(`${node.name} to register and be Ready`, () => nodeReady(kubectlPath, node), {
    timeoutMs: 120_000,
    fix: `read ${paths.logs}/${names.kubelet}.log`,
  }).catch((error) => {
    throw new HarnessError(`${error.message}\n${logTail(names.kubelet)}`);
  });
  // The pod range the harness routed to this node (set once; the field is immutable).
  const current = output(
    kubectlPath,
    ['get', 'node', node.name, '-o', 'jsonpath={.spec.podCIDR}'],
    {
      env: { ...process.env, KUBECONFIG: paths.kubeconfig },
    },
  );
  if (!current) {
    kubectl(kubectlPath, [
      'patch',
      'node',
      node.name,
      '--type=merge',
      '-p',
      JSON.stringify({ spec: { podCIDR: node.podCidr, podCIDRs: [node.podCidr] } }),
    ]);
  }
};

const systemNamespaces = ['default', 'kube-system', 'kube-public', 'kube-node-lease'];

/**
 * Lets the kubelets tear every pod down the normal way (CNI DEL, volume unmounts) while the
 * control plane still runs: namespaces of workloads are deleted, controllers in the system
 * namespaces removed, then the remaining pods deleted.
 */
const removeWorkloads = async (kubectlPath: string) => {
  const env = { ...process.env, KUBECONFIG: paths.kubeconfig };
  if (!existsSync(paths.kubeconfig) || !daemonPid('kube-apiserver')) return;
  const get = (args: string[]) =>
    run(kubectlPath, args, { env, allowFailure: true }).stdout.split('\n').filter(Boolean);
  const namespaces = get(['get', 'namespaces', '-o', 'name']).map((name) =>
    name.replace('namespace/', ''),
  );
  const workloads = namespaces.filter((name) => !systemNamespaces.includes(name));
  if (workloads.length > 0)
    run(kubectlPath, ['delete', 'namespace', '--wait=false', ...workloads], {
      env,
      allowFailure: true,
    });
  for (const namespace of ['default', 'kube-system']) {
    run(
      kubectlPath,
      [
        'delete',
        '-n',
        namespace,
        'deployments,daemonsets,statefulsets,replicasets,jobs',
        '--all',
        '--wait=false',
      ],
      { env, allowFailure: true },
    );
  }
  run(
    kubectlPath,
    ['delete', 'pods', '--all', '--all-namespaces', '--grace-period=2', '--wait=false'],
    { env, allowFailure: true },
  );
  const started = Date.now();
  await waitUntil(
    'every pod to be gone',
    () => get(['get', 'pods', '--all-namespaces', '-o', 'name']).length === 0,
    {
      timeoutMs: 120_000,
    },
  ).catch((error) => console.log(`      WARNING: ${error.message}; stopping the nodes anyway`));
  console.log(`      pods removed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
};

/** Kills and deletes every task and container of a node's containerd; its images stay. */
const removeContainers = (node: NodeSettings) => {
  const ctrPath = packageBinary('containerd', 'ctr');
  const base = ['--address', containerdSocket(node), '--namespace', 'k8s.io'];
  const list = (what: string) =>
    run(ctrPath, [...base, what, 'list', '-q'], { allowFailure: true })
      .stdout.split('\n')
      .filter(Boolean);
  for (const task of list('tasks'))
    run(ctrPath, [...base, 'tasks', 'kill', '-s', 'SIGKILL', task], { allowFailure: true });
  for (const task of list('tasks'))
    run(ctrPath, [...base, 'tasks', 'delete', '-f', task], { allowFailure: true });
  const containers = list('containers');
  for (const container of containers)
    run(ctrPath, [...base, 'containers', 'delete', container], { allowFailure: true });
  return containers.length;
};

const stopNode = async (node: NodeSettings) => {
  const names = daemons(node);
  await stopDaemon(names.proxy);
  await stopDaemon(names.kubelet);
  if (daemonPid(names.containerd)) removeContainers(node);
  await stopDaemon(names.containerd);
  // Shims of this node's containerd only (matched by its socket path).
  for (const pid of run(
    'pgrep',
    ['-f', `containerd-shim-runc-v2 .*-address ${containerdSocket(node)}`],
    { allowFailure: true },
  )
    .stdout.split('\n')
    .filter(Boolean)) {
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      // already gone
    }
  }
};

export const nodesAction = (kubectlPath: () => string): Action => ({
  name: 'nodes',
  description: `start containerd, kubelet and kube-proxy on ${nodes.map((node) => node.name).join(' and ')}`,
  up: async () => {
    // The nodes start side by side: most of the time goes into importing the images.
    await Promise.all(
      nodes.map(async (node) => {
        const started = Date.now();
        await startNode(node, kubectlPath());
        console.log(
          `      ${node.name} Ready in ${((Date.now() - started) / 1000).toFixed(1)} s (${node.address}, pods ${node.podCidr})`,
        );
      }),
    );
  },
  down: async () => {
    await removeWorkloads(kubectlPath());
    for (const node of [...nodes].reverse()) await stopNode(node);
    // Mounts left under the state folder (volumes, overlay roots), deepest first.
    const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((line) => line.split(' ')[4])
      .filter((mount): mount is string => Boolean(mount?.startsWith(`${paths.nodes}/`)))
      .sort((a, b) => b.length - a.length);
    for (const mount of mounts) run('umount', ['-l', mount], { allowFailure: true });
    for (const node of nodes) removeCgroups(node);
    rmSync(paths.nodes, { recursive: true, force: true });
  },
  status: () =>
    nodes
      .map(
        (node) =>
          `${node.name}: ${Object.values(daemons(node))
            .map(
              (name) =>
                `${name.split('-')[0] === 'kube' ? 'kube-proxy' : name.split('-')[0]} ${daemonPid(name) ? 'running' : 'stopped'}`,
            )
            .join(', ')}`,
      )
      .join('\n'),
});
