/**
 * etcd, kube-apiserver, kube-controller-manager and kube-scheduler as processes on the host
 * (in the guarded cgroup), listening on loopback or the cluster bridge only.
 */
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import type { Action } from '../lib/action.ts';
import {
  daemonPid,
  HarnessError,
  logTail,
  run,
  startDaemon,
  stopDaemon,
  waitUntil,
} from '../lib/run.ts';
import {
  apiServerPort,
  clusterDomain,
  etcdClientUrl,
  etcdPeerUrl,
  machineNetwork,
  paths,
  podNetwork,
  serviceNetwork,
} from '../lib/settings.ts';
import { packageBinary } from './debian-packages.ts';
import { kubernetesBinary } from './kubernetes-binaries.ts';
import { kubeconfigFor, pkiFile } from './pki.ts';

export const kubectlEnvironment = () => ({ ...process.env, KUBECONFIG: paths.kubeconfig });

/** `kubectl get --raw /readyz` against the cluster, with the harness's kubeconfig. */
const apiReady = (kubectl: string) =>
  run(kubectl, ['get', '--raw', '/readyz'], {
    env: kubectlEnvironment(),
    allowFailure: true,
  }).stdout.trim() === 'ok';

const components = ['kube-scheduler', 'kube-controller-manager', 'kube-apiserver', 'etcd'];

export const controlPlane = (kubectl: () => string): Action => ({
  name: 'control-plane',
  description: 'start etcd, kube-apiserver, kube-controller-manager and kube-scheduler on the host',
  up: async () => {
    mkdirSync(paths.etcd, { recursive: true, mode: 0o700 });
    const etcdMetrics = etcdClientUrl.replace(/:\d+$/, ':23810');
    startDaemon({
      name: 'etcd',
      command: packageBinary('etcd', 'etcd'),
      args: [
        '--name=e2e',
        `--data-dir=${paths.etcd}`,
        `--listen-client-urls=${etcdClientUrl}`,
        `--advertise-client-urls=${etcdClientUrl}`,
        `--listen-peer-urls=${etcdPeerUrl}`,
        `--initial-advertise-peer-urls=${etcdPeerUrl}`,
        `--initial-cluster=e2e=${etcdPeerUrl}`,
        `--listen-metrics-urls=${etcdMetrics}`,
        // A throwaway cluster on a VM disk: durability across a power cut does not matter.
        '--unsafe-no-fsync',
      ],
    });
    await waitUntil(
      'etcd to answer',
      () => run('curl', ['-sf', `${etcdClientUrl}/health`], { allowFailure: true }).status === 0,
      {
        timeoutMs: 30_000,
        fix: `read ${paths.logs}/etcd.log`,
      },
    ).catch((error) => {
      throw new HarnessError(`${error.message}\n${logTail('etcd')}`);
    });

    startDaemon({
      name: 'kube-apiserver',
      command: kubernetesBinary('kube-apiserver'),
      args: [
        `--etcd-servers=${etcdClientUrl}`,
        `--bind-address=${machineNetwork.hostAddress}`,
        `--advertise-address=${machineNetwork.hostAddress}`,
        `--secure-port=${apiServerPort}`,
        `--service-cluster-ip-range=${serviceNetwork}`,
        `--tls-cert-file=${pkiFile('apiserver.crt')}`,
        `--tls-private-key-file=${pkiFile('apiserver.key')}`,
        `--client-ca-file=${pkiFile('ca.crt')}`,
        `--kubelet-client-certificate=${pkiFile('apiserver-kubelet-client.crt')}`,
        `--kubelet-client-key=${pkiFile('apiserver-kubelet-client.key')}`,
        `--kubelet-certificate-authority=${pkiFile('ca.crt')}`,
        // Node names are not in DNS: reach kubelets by the address they report.
        '--kubelet-preferred-address-types=InternalIP',
        `--service-account-key-file=${pkiFile('service-account.pub')}`,
        `--service-account-signing-key-file=${pkiFile('service-account.key')}`,
        `--service-account-issuer=https://kubernetes.default.svc.${clusterDomain}`,
        '--authorization-mode=Node,RBAC',
        '--enable-admission-plugins=NodeRestriction',
        '--allow-privileged=true',
        '--profiling=false',
        // The host runs no kube-proxy: webhooks and aggregated APIs are reached at their
        // endpoints' pod addresses (routed to the nodes), not at Service addresses.
        '--enable-aggregator-routing=true',
      ],
    });
    await waitUntil('kube-apiserver to be ready', () => apiReady(kubectl()), {
      timeoutMs: 90_000,
      fix: `read ${paths.logs}/kube-apiserver.log`,
    }).catch((error) => {
      throw new HarnessError(`${error.message}\n${logTail('kube-apiserver')}`);
    });

    const authenticated = (component: string) => [
      `--kubeconfig=${kubeconfigFor(component)}`,
      `--authentication-kubeconfig=${kubeconfigFor(component)}`,
      `--authorization-kubeconfig=${kubeconfigFor(component)}`,
      '--bind-address=127.0.0.1',
      '--leader-elect=false',
    ];
    startDaemon({
      name: 'kube-controller-manager',
      command: kubernetesBinary('kube-controller-manager'),
      args: [
        ...authenticated('kube-controller-manager'),
        '--secure-port=10257',
        `--service-account-private-key-file=${pkiFile('service-account.key')}`,
        `--root-ca-file=${pkiFile('ca.crt')}`,
        '--use-service-account-credentials=true',
        `--cluster-signing-cert-file=${pkiFile('ca.crt')}`,
        `--cluster-signing-key-file=${pkiFile('ca.key')}`,
        `--service-cluster-ip-range=${serviceNetwork}`,
        `--cluster-cidr=${podNetwork}`,
        // Each node's pod range is fixed by the harness (routes, CNI): see nodes.ts.
        '--allocate-node-cidrs=false',
        // A lost node's pods are evicted after this, so the node-loss tests take seconds.
        '--node-monitor-grace-period=20s',
      ],
    });
    startDaemon({
      name: 'kube-scheduler',
      command: kubernetesBinary('kube-scheduler'),
      args: [...authenticated('kube-scheduler'), '--secure-port=10259'],
    });
    await waitUntil(
      'the controller-manager and scheduler to be healthy',
      () =>
        ['10257', '10259'].every(
          (port) =>
            run('curl', ['-skf', `https://127.0.0.1:${port}/healthz`], { allowFailure: true })
              .status === 0,
        ),
      {
        timeoutMs: 60_000,
        fix: `read ${paths.logs}/kube-controller-manager.log and kube-scheduler.log`,
      },
    );
  },
  down: async () => {
    for (const name of components) await stopDaemon(name);
    rmSync(paths.etcd, { recursive: true, force: true });
  },
  status: () =>
    `control plane: ${[...components]
      .reverse()
      .map((name) => `${name} ${daemonPid(name) ? 'running' : 'stopped'}`)
      .join(', ')}${existsSync(paths.kubeconfig) ? '' : ' (no kubeconfig)'}`,
});
