/**
 * Nothing the cluster runs may leave the machine. Every process the harness starts joins the
 * cgroup v2 group `secretid-e2e` before it runs, and on the host iptables refuses that group's
 * packets out of the uplink (filter OUTPUT REJECT, plus mangle POSTROUTING DROP behind it),
 * and any forwarding between the cluster's bridge and the uplink. Inside each node's network
 * namespace (nodes.ts adds those rules) anything bound out of the node to an address outside
 * the lab network is refused too. The rules are checked to exist before anything starts, and
 * `down` prints every rule's packet counter: they must all be zero.
 */
import { existsSync, mkdirSync, rmdirSync } from 'node:fs';
import type { Action } from '../lib/action.ts';
import { HarnessError, output, run, succeeds } from '../lib/run.ts';
import {
  clusterName,
  guardCgroup,
  guardComment,
  labNetwork,
  machineNetwork,
  uplinkInterface,
} from '../lib/settings.ts';

/** One guard rule: table, chain and match, without the -A/-I. */
export interface GuardRule {
  table: 'filter' | 'mangle' | 'raw';
  /** iptables, or ip6tables for IPv6. */
  family?: 'iptables' | 'ip6tables';
  chain: string;
  match: string[];
}

const cgroupMatch = ['-m', 'cgroup', '--path', clusterName];
const commented = (rule: string[]) => [...rule, '-m', 'comment', '--comment', guardComment];

/** The host's rules. */
export const hostGuardRules = (): GuardRule[] => [
  {
    table: 'filter',
    chain: 'OUTPUT',
    match: ['-o', uplinkInterface, ...cgroupMatch, '-j', 'REJECT'],
  },
  {
    table: 'mangle',
    chain: 'POSTROUTING',
    match: ['-o', uplinkInterface, ...cgroupMatch, '-j', 'DROP'],
  },
  {
    table: 'filter',
    chain: 'FORWARD',
    match: ['-i', machineNetwork.bridge, '-o', uplinkInterface, '-j', 'DROP'],
  },
  {
    table: 'filter',
    chain: 'FORWARD',
    match: ['-i', uplinkInterface, '-o', machineNetwork.bridge, '-j', 'DROP'],
  },
];

/**
 * The rules inside a node's namespace: out of the node, and from its pods, only to the lab
 * network. They sit in the raw table, which neither kube-proxy nor kube-router rewrites
 * (kube-router restores the whole filter table, which would reset a counter there).
 */
export const nodeGuardRules = (nodeInterface: string, podBridge: string): GuardRule[] => [
  {
    table: 'raw',
    chain: 'OUTPUT',
    match: ['-o', nodeInterface, '!', '-d', labNetwork, '-j', 'DROP'],
  },
  {
    table: 'raw',
    chain: 'PREROUTING',
    match: ['-i', podBridge, '!', '-d', labNetwork, '-j', 'DROP'],
  },
];

const command = (rule: GuardRule) => rule.family ?? 'iptables';
const iptables = (rule: GuardRule, action: '-C' | '-I' | '-D') => [
  '-w',
  '-t',
  rule.table,
  action,
  rule.chain,
  ...(action === '-I' ? ['1'] : []),
  ...commented(rule.match),
];

/** Inserts the rules (first in their chain) unless present, then checks each one exists. */
export const installGuardRules = (rules: GuardRule[], netns?: string) => {
  for (const rule of rules) {
    if (!succeeds(command(rule), iptables(rule, '-C'), { netns })) {
      run(command(rule), iptables(rule, '-I'), {
        netns,
        what: `${command(rule)} ${iptables(rule, '-I').join(' ')}`,
        fix: 'the kernel needs xt_cgroup, xt_comment and REJECT (built into this VM kind); install iptables',
      });
    }
  }
  const missing = rules.filter((rule) => !succeeds(command(rule), iptables(rule, '-C'), { netns }));
  if (missing.length > 0) {
    throw new HarnessError(
      `egress guard rules missing after insertion${netns ? ` in ${netns}` : ''}: ${missing.map((rule) => rule.match.join(' ')).join('; ')}`,
    );
  }
};

export const removeGuardRules = (rules: GuardRule[], netns?: string) => {
  for (const rule of rules) {
    while (succeeds('iptables', iptables(rule, '-C'), { netns }))
      run('iptables', iptables(rule, '-D'), { netns });
  }
};

/** Packet counters of every guard rule, from iptables-save -c, as "table chain match: N". */
export const guardCounters = (netns?: string) => {
  const lines: Array<{ rule: string; packets: number }> = [];
  for (const [save, table] of ['filter', 'mangle', 'raw'].flatMap((name) => [
    ['iptables-save', name],
    ['ip6tables-save', name],
  ]) as Array<[string, string]>) {
    const saved = output(save, ['-c', '-t', table], { netns });
    for (const line of saved.split('\n')) {
      if (!line.includes(guardComment)) continue;
      const match = /^\[(\d+):(\d+)\] -A (.*)$/.exec(line);
      if (match)
        lines.push({
          rule: `${table} ${match[3]?.replace(/ -m comment --comment \S+/, '')}`,
          packets: Number(match[1]),
        });
    }
  }
  return lines;
};

export const printCounters = (label: string, counters: ReturnType<typeof guardCounters>) => {
  for (const counter of counters) {
    console.log(
      `      ${counter.packets === 0 ? 'ok  ' : 'LEAK'} ${label}: ${counter.packets} packets  ${counter.rule}`,
    );
  }
  return counters.reduce((sum, counter) => sum + counter.packets, 0);
};

export const egressGuard: Action = {
  name: 'egress-guard',
  description: `refuse every packet of cgroup ${clusterName} out of ${uplinkInterface}, and forwarding between the cluster bridge and ${uplinkInterface}`,
  up: () => {
    if (!existsSync('/sys/fs/cgroup/unified/cgroup.procs')) {
      throw new HarnessError(
        'cgroup v2 is not mounted at /sys/fs/cgroup/unified: the guard matches processes by their cgroup v2 path',
        'mount -t cgroup2 none /sys/fs/cgroup/unified (this VM kind mounts it at boot)',
      );
    }
    // xt_cgroup resolves the path when the rule is inserted: the group must exist first.
    mkdirSync(guardCgroup, { recursive: true });
    installGuardRules(hostGuardRules());
    console.log(
      `      ${hostGuardRules().length} host rules in place; processes join ${guardCgroup} before they start`,
    );
  },
  down: () => {
    const total = printCounters('host', guardCounters());
    removeGuardRules(hostGuardRules());
    if (existsSync(guardCgroup)) {
      try {
        rmdirSync(guardCgroup);
      } catch (error) {
        throw new HarnessError(
          `cannot remove ${guardCgroup}: ${(error as Error).message} (a process of the cluster is still alive)`,
        );
      }
    }
    if (total > 0) {
      throw new HarnessError(
        `the egress guard counted ${total} packets bound off the machine`,
        'see which rule above counted them, and which process sent them (logs in the state folder)',
      );
    }
  },
  status: () => {
    const present = hostGuardRules().filter((rule) =>
      succeeds('iptables', iptables(rule, '-C')),
    ).length;
    return `egress guard: ${present}/${hostGuardRules().length} host rules, ${guardCounters().reduce((sum, c) => sum + c.packets, 0)} packets refused so far`;
  },
};
