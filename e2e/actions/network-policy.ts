/**
 * NetworkPolicies enforced, not just accepted: kube-router's network policy controller (its
 * routing, service proxy and CNI parts off) runs on each node, in the node's network namespace,
 * and programs that node's iptables and ipsets from the policies and pods it watches.
 */
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
import { nodes, paths, serviceNetwork } from '../lib/settings.ts';
import { goBinary } from './go-binaries.ts';

const daemonName = (node: string) => `kube-router-${node}`;

export const networkPolicy: Action = {
  name: 'network-policy',
  description: "start kube-router's network policy controller on every node",
  up: async () => {
    for (const node of nodes) {
      startDaemon({
        name: daemonName(node.name),
        command: goBinary('kubeRouter'),
        args: [
          '--run-firewall=true',
          '--run-router=false',
          '--run-service-proxy=false',
          '--enable-cni=false',
          '--enable-ipv6=false',
          `--hostname-override=${node.name}`,
          `--kubeconfig=${paths.kubeconfig}`,
          `--service-cluster-ip-range=${serviceNetwork}`,
          '--metrics-port=0',
          '--iptables-sync-period=1m',
          '--v=1',
        ],
        netns: node.namespace,
      });
    }
    for (const node of nodes) {
      // The controller's own chain in the node's filter table shows it has synced once.
      await waitUntil(
        `kube-router's policy chains on ${node.name}`,
        () =>
          run('iptables-save', ['-t', 'filter'], { netns: node.namespace }).stdout.includes(
            'KUBE-ROUTER-FORWARD',
          ),
        { timeoutMs: 60_000, fix: `read ${paths.logs}/${daemonName(node.name)}.log` },
      ).catch((error) => {
        throw new HarnessError(`${error.message}\n${logTail(daemonName(node.name))}`);
      });
    }
  },
  down: async () => {
    for (const node of nodes) await stopDaemon(daemonName(node.name));
  },
  status: () =>
    `network policy: ${nodes.map((node) => `kube-router on ${node.name} ${daemonPid(daemonName(node.name)) ? 'running' : 'stopped'}`).join(', ')}`,
};
