/**
 * The test cluster's layout: folders, addresses and names, each written once. Every action,
 * the e2e tests and `status` read them from here; the versions are in ../versions.env.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parse } from 'yaml';

/** Repository root (the harness lives in <root>/e2e). */
export const repositoryRoot = resolve(import.meta.dirname, '..', '..');

/**
 * A default of one of ansible/'s roles (roles/<role>/defaults/main.yml): values the cluster the
 * playbooks build and the test cluster share are written there once.
 */
export const roleDefault = (role: string, name: string) => {
  const defaults = parse(
    readFileSync(join(repositoryRoot, 'ansible', 'roles', role, 'defaults', 'main.yml'), 'utf8'),
  ) as Record<string, unknown>;
  const value = defaults[name];
  if (typeof value !== 'string') throw new Error(`ansible role ${role} has no default ${name}`);
  return value;
};

/** Builds and downloads, kept between runs and keyed by version (SECRETID_E2E_CACHE). */
export const cacheDirectory = resolve(process.env.SECRETID_E2E_CACHE ?? '/var/cache/secretid-e2e');
/** Everything a running cluster writes; `down` removes it (SECRETID_E2E_STATE). */
export const stateDirectory = resolve(process.env.SECRETID_E2E_STATE ?? '/var/lib/secretid-e2e');

export const paths = {
  pki: join(stateDirectory, 'pki'),
  logs: join(stateDirectory, 'logs'),
  pids: join(stateDirectory, 'pids'),
  etcd: join(stateDirectory, 'etcd'),
  nodes: join(stateDirectory, 'nodes'),
  config: join(stateDirectory, 'config'),
  /**
   * Knative's release files as the harness applied them (serving-crds.yaml, serving-core.yaml,
   * kourier.yaml): assembled from the modules, since a release download is not reachable here.
   */
  knativeRelease: join(stateDirectory, 'knative-release'),
  /** The admin kubeconfig `status` prints for people and the tests. */
  kubeconfig: join(stateDirectory, 'admin.kubeconfig'),
} as const;

/** Name of the harness: cgroup, iptables comments, bridge and namespace prefixes. */
export const clusterName = 'secretid-e2e';

/**
 * All the cluster's networks lie inside this one range, so the egress guard can say "nothing
 * outside it leaves through the VM's interface" with one rule: the machine network of the
 * nodes, the pod network and the service network below.
 */
export const labNetwork = '10.212.0.0/14';

/** The bridge on the host that joins the nodes (a stand-in for a machine network). */
export const machineNetwork = {
  bridge: 'sid-e2e0',
  hostAddress: '10.213.0.1',
  prefixLength: 24,
} as const;

/** The nodes: each is a network namespace with its own containerd, kubelet and kube-proxy. */
export interface NodeSettings {
  name: string;
  /** Its address on the machine network (kubelet, kube-proxy, host ports). */
  address: string;
  /** The pods' range on this node (the Node object's spec.podCIDR). */
  podCidr: string;
  /** The bridge's address for this node's pods: the pods' gateway. */
  podGateway: string;
  /** Network namespace and veth names. */
  namespace: string;
  hostVeth: string;
}
const node = (index: number): NodeSettings => ({
  name: `node-${index}`,
  address: `10.213.0.${10 + index}`,
  podCidr: `10.214.${index}.0/24`,
  podGateway: `10.214.${index}.1`,
  namespace: `${clusterName}-node-${index}`,
  hostVeth: `sid-e2e-n${index}`,
});
export const nodes: NodeSettings[] = [node(1), node(2)];

export const podNetwork = '10.214.0.0/16';
export const serviceNetwork = '10.215.0.0/16';
/** The `kubernetes` Service's address: the first of the service network. */
export const apiServiceAddress = '10.215.0.1';
export const clusterDnsAddress = '10.215.0.10';
export const clusterDomain = 'cluster.local';

/** The API server listens on the host's bridge address (and loopback) at this port. */
export const apiServerPort = 6443;
export const apiServerUrl = `https://${machineNetwork.hostAddress}:${apiServerPort}`;
export const etcdClientUrl = 'http://127.0.0.1:23790';
export const etcdPeerUrl = 'http://127.0.0.1:23800';

/** cgroup v2 group every cluster process runs in (the egress guard matches it). */
export const guardCgroup = `/sys/fs/cgroup/unified/${clusterName}`;
/** Comment on every iptables rule of the guard, so checks and `down` find exactly them. */
export const guardComment = `${clusterName}-guard`;
/** The VM's own interface to the world: nothing of the cluster may leave through it. */
export const uplinkInterface = process.env.SECRETID_E2E_UPLINK ?? 'eth0';

/** Pinned versions from ../versions.env. */
export const versions = Object.fromEntries(
  readFileSync(join(import.meta.dirname, '..', 'versions.env'), 'utf8')
    .split('\n')
    .filter((line) => /^[A-Z_]+=/.test(line))
    .map((line) => line.split('=', 2) as [string, string]),
) as Record<string, string>;

/** A pinned version, or a clear error naming the missing pin. */
export const version = (name: string) => {
  const value = versions[name];
  if (!value) throw new Error(`e2e/versions.env has no ${name}=`);
  return value;
};
