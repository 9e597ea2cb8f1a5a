/**
 * What the cluster may leave on the shared VM, recorded before `up` and checked by `down`:
 * the kernel settings a kubelet would like to change (they must be exactly as before), the
 * network namespaces, CNI result files and container log links that pods create in folders
 * shared with the host (those made since `up` are removed), and the state folder (removed,
 * except its logs, kept for a post-mortem).
 */
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import type { Action } from '../lib/action.ts';
import { HarnessError, output, run } from '../lib/run.ts';
import { paths, stateDirectory } from '../lib/settings.ts';

/** Kernel settings the kubelet's container manager checks (container_manager_linux.go). */
export const watchedKernelSettings = [
  'vm.overcommit_memory',
  'vm.panic_on_oom',
  'kernel.panic',
  'kernel.panic_on_oops',
  'kernel.keys.root_maxkeys',
  'kernel.keys.root_maxbytes',
  'net.ipv4.ip_forward',
  'net.ipv4.conf.all.route_localnet',
  'net.netfilter.nf_conntrack_max',
];

const snapshotFile = join(stateDirectory, 'host-before.json');
const sharedFolders = {
  netns: '/run/netns',
  cniResults: '/var/lib/cni/results',
  containerLogs: '/var/log/containers',
};

const list = (folder: string) => (existsSync(folder) ? readdirSync(folder).sort() : []);
const kernelSettings = () =>
  Object.fromEntries(
    watchedKernelSettings.map((name) => [
      name,
      output('sysctl', ['-n', name], { allowFailure: true }) || '(absent)',
    ]),
  );

interface Snapshot {
  kernel: Record<string, string>;
  folders: Record<keyof typeof sharedFolders, string[]>;
}

const takeSnapshot = (): Snapshot => ({
  kernel: kernelSettings(),
  folders: {
    netns: list(sharedFolders.netns),
    cniResults: list(sharedFolders.cniResults),
    containerLogs: list(sharedFolders.containerLogs),
  },
});

/** Kernel settings that differ from the snapshot taken before `up`. */
export const changedKernelSettings = () => {
  if (!existsSync(snapshotFile)) return [];
  const before = (JSON.parse(readFileSync(snapshotFile, 'utf8')) as Snapshot).kernel;
  const now = kernelSettings();
  return Object.keys(before)
    .filter((name) => before[name] !== now[name])
    .map((name) => `${name}: ${before[name]} before up, ${now[name]} now`);
};

export const hostState: Action = {
  name: 'host-state',
  description: 'record the kernel settings and shared folders the cluster must leave as they are',
  up: () => {
    mkdirSync(stateDirectory, { recursive: true });
    if (!existsSync(snapshotFile)) {
      // A new cluster: the previous one's logs go, this one's start empty.
      rmSync(paths.logs, { recursive: true, force: true });
      writeFileSync(snapshotFile, JSON.stringify(takeSnapshot(), null, 2));
    }
    const changed = changedKernelSettings();
    if (changed.length > 0) {
      throw new HarnessError(
        `kernel settings changed while the cluster ran: ${changed.join('; ')}`,
      );
    }
    console.log(
      `      ${watchedKernelSettings.length} kernel settings recorded in ${snapshotFile}`,
    );
  },
  down: () => {
    if (!existsSync(snapshotFile)) return;
    const before = JSON.parse(readFileSync(snapshotFile, 'utf8')) as Snapshot;
    const removed: string[] = [];
    for (const name of list(sharedFolders.netns).filter(
      (entry) => !before.folders.netns.includes(entry),
    )) {
      if (!name.startsWith('cni-')) continue;
      run('ip', ['netns', 'delete', name], { allowFailure: true });
      removed.push(`netns ${name}`);
    }
    for (const name of list(sharedFolders.cniResults).filter(
      (entry) => !before.folders.cniResults.includes(entry),
    )) {
      rmSync(join(sharedFolders.cniResults, name), { force: true });
      removed.push(`CNI result ${name}`);
    }
    for (const name of list(sharedFolders.containerLogs)) {
      const link = join(sharedFolders.containerLogs, name);
      let target = '';
      try {
        target = readlinkSync(link);
      } catch {
        continue;
      }
      if (target.startsWith(`${stateDirectory}/`)) {
        rmSync(link, { force: true });
        removed.push(`log link ${name}`);
      }
    }
    if (removed.length > 0)
      console.log(
        `      removed what pods left in shared folders: ${removed.length} (${removed.slice(0, 4).join(', ')}${removed.length > 4 ? ', ...' : ''})`,
      );
    const changed = changedKernelSettings();
    for (const entry of readdirSync(stateDirectory)) {
      if (join(stateDirectory, entry) !== paths.logs)
        rmSync(join(stateDirectory, entry), { recursive: true, force: true });
    }
    if (changed.length > 0) {
      throw new HarnessError(
        `the VM's kernel settings changed while the cluster ran: ${changed.join('; ')}`,
      );
    }
    console.log(
      `      kernel settings unchanged (${watchedKernelSettings.length} checked); logs kept in ${paths.logs}`,
    );
  },
};
