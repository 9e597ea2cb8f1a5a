/**
 * The machine network of a two-node cluster on one VM: a bridge on the host (the "switch"),
 * and per node a network namespace joined to it by a veth pair (the node's `eth0`). Each node
 * routes the other node's pod range to it, and the host routes every pod range to its node,
 * so pods, nodes and the control plane on the host reach each other without NAT. The host
 * itself forwards nothing (its kernel settings are left as they are); a node forwards for its
 * own pods (net.ipv4.ip_forward inside its namespace only).
 */
import { existsSync } from 'node:fs';
import type { Action } from '../lib/action.ts';
import { HarnessError, run, succeeds } from '../lib/run.ts';
import { machineNetwork, nodes } from '../lib/settings.ts';
import { guardCounters, installGuardRules, nodeGuardRules, printCounters } from './egress-guard.ts';

/** The node's interface name inside its namespace. */
export const nodeInterface = 'eth0';
/** The bridge of the node's pods (the CNI configuration in nodes.ts creates it). */
export const podBridge = 'cni0';

const ip = (args: string[], netns?: string) =>
  run('ip', args, { netns, what: `ip ${args.join(' ')}${netns ? ` (in ${netns})` : ''}` });
const sysctl = (setting: string, netns: string) =>
  run('sysctl', ['-q', '-w', setting], { netns, what: `sysctl ${setting} in ${netns}` });

const namespaceExists = (name: string) => existsSync(`/run/netns/${name}`);

export const network: Action = {
  name: 'network',
  description: `bridge ${machineNetwork.bridge} on the host and one network namespace per node (${nodes.map((node) => node.name).join(', ')})`,
  up: () => {
    const { bridge, hostAddress, prefixLength } = machineNetwork;
    if (!succeeds('ip', ['link', 'show', bridge])) {
      ip(['link', 'add', bridge, 'type', 'bridge']);
      ip(['addr', 'add', `${hostAddress}/${prefixLength}`, 'dev', bridge]);
    }
    ip(['link', 'set', bridge, 'up']);
    for (const node of nodes) {
      if (!namespaceExists(node.namespace)) ip(['netns', 'add', node.namespace]);
      if (!succeeds('ip', ['link', 'show', node.hostVeth])) {
        ip([
          'link',
          'add',
          node.hostVeth,
          'type',
          'veth',
          'peer',
          'name',
          nodeInterface,
          'netns',
          node.namespace,
        ]);
        ip(['link', 'set', node.hostVeth, 'master', bridge]);
        ip(
          ['addr', 'add', `${node.address}/${prefixLength}`, 'dev', nodeInterface],
          node.namespace,
        );
      }
      ip(['link', 'set', node.hostVeth, 'up']);
      ip(['link', 'set', 'lo', 'up'], node.namespace);
      ip(['link', 'set', nodeInterface, 'up'], node.namespace);
      ip(['route', 'replace', 'default', 'via', hostAddress], node.namespace);
      for (const other of nodes.filter((candidate) => candidate !== node)) {
        ip(['route', 'replace', other.podCidr, 'via', other.address], node.namespace);
      }
      ip(['route', 'replace', node.podCidr, 'via', node.address]);
      sysctl('net.ipv4.ip_forward=1', node.namespace);
      // Pods reaching a Service on their own node's bridge need the bridge's traffic in iptables.
      sysctl('net.bridge.bridge-nf-call-iptables=1', node.namespace);
      installGuardRules(nodeGuardRules(nodeInterface, podBridge), node.namespace);
    }
    console.log(
      `      ${nodes.map((node) => `${node.name} ${node.address} pods ${node.podCidr}`).join('; ')}`,
    );
  },
  down: () => {
    let leaked = 0;
    for (const node of nodes) {
      if (!namespaceExists(node.namespace)) continue;
      leaked += printCounters(node.name, guardCounters(node.namespace));
      ip(['netns', 'delete', node.namespace]);
    }
    if (succeeds('ip', ['link', 'show', machineNetwork.bridge]))
      ip(['link', 'delete', machineNetwork.bridge]);
    if (leaked > 0) {
      throw new HarnessError(
        `the nodes' egress guard counted ${leaked} packets bound off the lab network`,
      );
    }
  },
  status: () =>
    `network: bridge ${machineNetwork.bridge} ${succeeds('ip', ['link', 'show', machineNetwork.bridge]) ? 'up' : 'absent'}; ${nodes
      .map((node) => `${node.name} ${namespaceExists(node.namespace) ? node.address : 'absent'}`)
      .join(', ')}`,
};
