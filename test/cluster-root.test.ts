/**
 * Roles applied for real, not in check mode: a throwaway Debian 12 root made with debootstrap
 * (minbase, from Debian's default mirror) stands in for a machine, reached through Ansible's
 * chroot connection. The nfs_server play of site.yml runs in it twice (the second run changes
 * nothing but the service start a chroot cannot keep), and the registry role's server tasks
 * install Debian's registry there, configure it and start it on loopback, where an image is
 * pushed and read back; the node roles' NFS client task installs nfs-common there. Needs root (chroot) and debootstrap; nothing outside the temporary root
 * changes, and the registry is stopped afterwards.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import test from 'ava';
import { stringify } from 'yaml';
import { ansibleDirectory, ansibleEnvironment, roleTasksPlaybook } from './helpers/ansible.ts';
import { freePort } from './helpers/free-port.ts';

const run = promisify(execFile);
const version = (JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }).version;
const scratch = mkdtempSync(join(tmpdir(), 'secretid-root-'));
const root = join(scratch, 'root');
const inventory = join(scratch, 'hosts.yml');
// The chroot connection takes the root's path as the host (and as ansible_host: none is set).
// Cluster nodes named in the inventory only as NFS clients: never contacted.
const clients = { 'control-plane-1': '127.0.0.10', 'worker-1': '127.0.0.21' };

interface PlaybookReport {
  plays: { tasks: { task: { name: string }; hosts: Record<string, { changed?: boolean }> }[] }[];
  stats: Record<string, { changed: number; failures: number; unreachable: number }>;
}

/** ansible-playbook with the JSON callback; rejects with the output when the run fails. */
const playbook = async (args: string[], env: NodeJS.ProcessEnv = {}) => {
  try {
    const { stdout } = await run('ansible-playbook', ['-i', inventory, ...args], {
      cwd: ansibleDirectory,
      env: ansibleEnvironment(true, env),
      maxBuffer: 64 * 1024 * 1024,
    });
    return JSON.parse(stdout) as PlaybookReport;
  } catch (error) {
    const failure = error as { stdout?: string; stderr?: string; message: string };
    throw new Error(
      `ansible-playbook ${args.join(' ')} failed: ${failure.message}\n${failure.stdout}\n${failure.stderr}`,
    );
  }
};

const changedTasks = (report: PlaybookReport) =>
  report.plays.flatMap((play) =>
    play.tasks
      .filter((task) => task.hosts[root]?.changed)
      // Task names without their "role : " prefix.
      .map((task) => task.task.name.replace(/^\w+ : /, '')),
  );

test.before('a throwaway Debian root', async (t) => {
  if (process.getuid?.() !== 0)
    throw new Error(
      'applying roles into a debootstrap root needs root (chroot): run the tests as root, as CI does',
    );
  t.timeout(600_000);
  try {
    await run('debootstrap', ['--variant=minbase', '--include=python3', 'bookworm', root], {
      maxBuffer: 64 * 1024 * 1024,
    });
  } catch (error) {
    throw new Error(
      `debootstrap failed (install it with apt-get install debootstrap; it needs Debian's mirror): ${(error as Error).message}`,
    );
  }
  // As in any image build: packages installed in the root do not start services by themselves.
  writeFileSync(join(root, 'usr/sbin/policy-rc.d'), '#!/bin/sh\nexit 101\n');
  chmodSync(join(root, 'usr/sbin/policy-rc.d'), 0o755);
  const client = (address: string) => ({ ansible_host: address });
  writeFileSync(
    inventory,
    stringify({
      all: {
        children: {
          nfs_servers: {
            hosts: {
              [root]: { ansible_connection: 'community.general.chroot' },
            },
          },
          control_plane: { hosts: { 'control-plane-1': client(clients['control-plane-1']) } },
          workers: { hosts: { 'worker-1': client(clients['worker-1']) } },
        },
      },
    }),
  );
});

test.after.always('remove the root', async () => {
  await run('chroot', [root, '/etc/init.d/docker-registry', 'stop']).catch(() => undefined);
  // Nothing is mounted in the root: removing it touches nothing else.
  rmSync(scratch, { recursive: true, force: true });
});

test.serial(
  'the nfs_server play of site.yml applies for real in a Debian root, and again without changes',
  async (t) => {
    t.timeout(600_000);
    const first = await playbook(['site.yml', '--limit', 'nfs_servers']);
    t.is(first.stats[root]?.failures, 0);
    t.true(changedTasks(first).includes('Write the exports file'), changedTasks(first).join(', '));

    const { stdout: status } = await run('chroot', [
      root,
      'dpkg-query',
      '--show',
      `--showformat=\${Status}`,
      'nfs-kernel-server',
    ]);
    t.is(status, 'install ok installed');
    // Directories owned by the uid PostgreSQL runs as in the chart, with the modes it needs.
    for (const [directory, mode] of [
      ['srv/nfs/postgres-data', 0o700],
      ['srv/nfs/postgres-backup', 0o750],
    ] as const) {
      const stat = statSync(join(root, directory));
      t.deepEqual([stat.uid, stat.gid, stat.mode & 0o777], [999, 999, mode], directory);
    }
    const exports = readFileSync(join(root, 'etc/exports.d/secretid.exports'), 'utf8');
    const options = '(rw,sync,no_subtree_check,root_squash)';
    for (const directory of ['/srv/nfs/postgres-data', '/srv/nfs/postgres-backup'])
      t.true(
        exports.includes(
          `${directory} ${clients['control-plane-1']}${options} ${clients['worker-1']}${options}`,
        ),
        exports,
      );
    // exportfs -ra (the role's handler) parsed the file: the export table holds every pair.
    const table = readFileSync(join(root, 'var/lib/nfs/etab'), 'utf8');
    for (const directory of ['/srv/nfs/postgres-data', '/srv/nfs/postgres-backup'])
      for (const address of Object.values(clients))
        t.regex(
          table,
          new RegExp(
            `^${directory}\\t${address.replaceAll('.', '\\.')}\\(rw,sync,.*root_squash`,
            'm',
          ),
        );

    const second = await playbook(['site.yml', '--limit', 'nfs_servers']);
    t.is(second.stats[root]?.failures, 0);
    // Debian's init script cannot start the kernel NFS server in a chroot, so "started" is never
    // observed and that task reports a change each time; every other task is idempotent.
    t.deepEqual(changedTasks(second), ['Start the NFS server and enable it at boot']);
  },
);

const sha256 = (data: Buffer | string) =>
  `sha256:${createHash('sha256').update(data).digest('hex')}`;

/** Pushes one blob over the registry API (a monolithic upload). */
const pushBlob = async (base: string, repository: string, blob: Buffer) => {
  const start = await fetch(`${base}/v2/${repository}/blobs/uploads/`, { method: 'POST' });
  if (start.status !== 202) throw new Error(`upload start: ${start.status} ${await start.text()}`);
  const location = new URL(start.headers.get('location') ?? '', base);
  location.searchParams.set('digest', sha256(blob));
  const put = await fetch(location, {
    method: 'PUT',
    headers: { 'content-type': 'application/octet-stream' },
    body: new Uint8Array(blob),
  });
  if (put.status !== 201) throw new Error(`upload: ${put.status} ${await put.text()}`);
  return { digest: sha256(blob), size: blob.length };
};

test.serial(
  "the registry role's server tasks install, configure and start Debian's registry, which takes a push the deploy then finds",
  async (t) => {
    t.timeout(600_000);
    const port = await freePort();
    const playbookFile = roleTasksPlaybook(scratch, 'registry', 'server.yml', 'nfs_servers');
    const report = await playbook(
      [
        playbookFile,
        '-e',
        JSON.stringify({ registry_host: root, registry_address: '127.0.0.1', registry_port: port }),
      ],
      { ANSIBLE_ROLES_PATH: join(ansibleDirectory, 'roles') },
    );
    t.is(report.stats[root]?.failures, 0);
    t.true(
      readFileSync(join(root, 'etc/docker/registry/config.yml'), 'utf8').includes(
        `addr: 127.0.0.1:${port}`,
      ),
    );

    const base = `http://127.0.0.1:${port}`;
    let ready: Response | undefined;
    for (let attempt = 0; attempt < 50 && ready?.status !== 200; attempt++) {
      ready = await fetch(`${base}/v2/`).catch(() => undefined);
      if (ready?.status !== 200) await new Promise((resolve) => setTimeout(resolve, 200));
    }
    t.is(ready?.status, 200, 'the registry answers /v2/ without authentication');

    // An image the way the deploy pushes one: a config, a layer (an empty tar), a manifest.
    const repository = 'secretid-api';
    const config = await pushBlob(
      base,
      repository,
      Buffer.from(
        JSON.stringify({
          architecture: 'amd64',
          os: 'linux',
          rootfs: { type: 'layers', diff_ids: [sha256(Buffer.alloc(1024))] },
        }),
      ),
    );
    const layer = await pushBlob(base, repository, gzipSync(Buffer.alloc(1024)));
    const manifest = JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...layer }],
    });
    const put = await fetch(`${base}/v2/${repository}/manifests/${version}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
      body: manifest,
    });
    t.is(put.status, 201, await put.text());
    const read = await fetch(`${base}/v2/${repository}/manifests/${version}`, {
      headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
    });
    t.is(read.status, 200);
    t.is(await read.text(), manifest);
    t.is(read.headers.get('docker-content-digest'), sha256(manifest));
    // Stored where the role's configuration says, by the registry's own user.
    const stored = statSync(
      join(root, 'var/lib/docker-registry/docker/registry/v2/repositories', repository),
    );
    t.true(stored.isDirectory());

    // The deploy asks this registry which images it already has: only the two not pushed are built.
    const lookupPlaybook = roleTasksPlaybook(
      scratch,
      'secretid_deploy',
      'images-present.yml',
      'localhost',
    );
    const lookup = await playbook(
      [
        '-i',
        'localhost,',
        '-c',
        'local',
        lookupPlaybook,
        '-e',
        JSON.stringify({
          secretid_deploy_repository: resolve('.'),
          secretid_deploy_registry: `127.0.0.1:${port}`,
        }),
      ],
      { ANSIBLE_ROLES_PATH: join(ansibleDirectory, 'roles') },
    );
    const chosen = lookup.plays[0]?.tasks
      .flatMap((task) => Object.values(task.hosts))
      .map(
        (host) =>
          (host as { ansible_facts?: { secretid_deploy_images_to_build?: { name: string }[] } })
            .ansible_facts,
      )
      .find((facts) => facts?.secretid_deploy_images_to_build)?.secretid_deploy_images_to_build;
    t.deepEqual(
      chosen?.map((image) => image.name),
      ['secretid-web', 'secretid-seed'],
    );

    await run('chroot', [root, '/etc/init.d/docker-registry', 'stop']);
    await t.throwsAsync(fetch(`${base}/v2/`), undefined, 'the registry is stopped');
  },
);

test.serial(
  "each node role's NFS client task installs Debian's nfs-common, whose mount.nfs the kubelet mounts the chart's NFS volumes with",
  async (t) => {
    t.timeout(600_000);
    for (const role of ['k3s_server', 'k3s_agent']) {
      const playbookFile = roleTasksPlaybook(scratch, role, 'nfs-client.yml', 'nfs_servers');
      const report = await playbook([playbookFile], {
        ANSIBLE_ROLES_PATH: join(ansibleDirectory, 'roles'),
      });
      t.is(report.stats[root]?.failures, 0, role);
      t.true(statSync(join(root, 'sbin/mount.nfs')).isFile(), `${role}: /sbin/mount.nfs`);
    }
  },
);
