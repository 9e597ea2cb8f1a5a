/**
 * containerd and etcd from Debian trixie, fetched with a private apt configuration (the
 * machine's own sources stay bookworm) and unpacked with dpkg -x into the cache: nothing is
 * installed. bookworm's containerd 1.6.20 is older than Kubernetes 1.34 supports.
 */
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Action } from '../lib/action.ts';
import { HarnessError, run } from '../lib/run.ts';
import { cacheDirectory, version } from '../lib/settings.ts';

interface UnpackedPackage {
  name: string;
  versionPin: string;
  /** Binaries the package must provide, relative to its root. */
  binaries: string[];
}

export const trixiePackages = {
  containerd: {
    name: 'containerd',
    versionPin: 'CONTAINERD_DEB_VERSION',
    binaries: ['usr/bin/containerd', 'usr/bin/containerd-shim-runc-v2', 'usr/bin/ctr'],
  },
  etcd: {
    name: 'etcd-server',
    versionPin: 'ETCD_DEB_VERSION',
    binaries: ['usr/bin/etcd'],
  },
  prometheus: {
    name: 'prometheus',
    versionPin: 'PROMETHEUS_DEB_VERSION',
    binaries: ['usr/bin/prometheus'],
  },
  postgresExporter: {
    name: 'prometheus-postgres-exporter',
    versionPin: 'POSTGRES_EXPORTER_DEB_VERSION',
    binaries: ['usr/bin/prometheus-postgres-exporter'],
  },
  alertmanager: {
    name: 'prometheus-alertmanager',
    versionPin: 'ALERTMANAGER_DEB_VERSION',
    binaries: ['usr/bin/prometheus-alertmanager', 'usr/bin/amtool'],
  },
  blackboxExporter: {
    name: 'prometheus-blackbox-exporter',
    versionPin: 'BLACKBOX_EXPORTER_DEB_VERSION',
    binaries: ['usr/bin/prometheus-blackbox-exporter'],
  },
} satisfies Record<string, UnpackedPackage>;

const packageRoot = (pkg: UnpackedPackage) =>
  join(cacheDirectory, 'debian', `${pkg.name}_${version(pkg.versionPin)}`);

/** Absolute path of a binary of an unpacked package. */
export const packageBinary = (key: keyof typeof trixiePackages, binary: string) =>
  join(packageRoot(trixiePackages[key]), 'usr', 'bin', binary);

const aptRoot = join(cacheDirectory, 'debian', 'apt-trixie');
const aptOptions = () => [
  '-o',
  'Dir::Etc::sourcelist=/dev/null',
  '-o',
  `Dir::Etc::sourceparts=${join(aptRoot, 'sources')}`,
  '-o',
  `Dir::State::Lists=${join(aptRoot, 'lists')}`,
  '-o',
  `Dir::Cache::Archives=${join(aptRoot, 'archives')}`,
  '-o',
  'Dir::Cache::pkgcache=',
  '-o',
  'Dir::Cache::srcpkgcache=',
  '-o',
  'APT::Sandbox::User=root',
];

const fetchAndUnpack = (pkg: UnpackedPackage) => {
  const pinned = version(pkg.versionPin);
  for (const folder of ['sources', 'lists/partial', 'archives/partial', 'downloads']) {
    mkdirSync(join(aptRoot, folder), { recursive: true });
  }
  writeFileSync(
    join(aptRoot, 'sources', 'trixie.sources'),
    [
      'Types: deb',
      'URIs: http://deb.debian.org/debian',
      'Suites: trixie',
      'Components: main',
      'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg',
      '',
    ].join('\n'),
  );
  const downloads = join(aptRoot, 'downloads');
  const debFile = () =>
    readdirSync(downloads).find((file) => file.startsWith(`${pkg.name}_`) && file.endsWith('.deb'));
  if (!debFile()) {
    run('apt-get', [...aptOptions(), 'update', '-qq'], {
      what: 'apt-get update (Debian trixie, private configuration)',
      fix: 'check that deb.debian.org answers from this machine',
    });
    run('apt-get', [...aptOptions(), 'download', `${pkg.name}=${pinned}`], {
      cwd: downloads,
      what: `apt-get download ${pkg.name}=${pinned}`,
      fix: `see which versions trixie has (apt-cache policy with the same options) and update ${pkg.versionPin} in e2e/versions.env`,
    });
  }
  const deb = debFile();
  if (!deb) throw new HarnessError(`apt-get download left no ${pkg.name} package in ${downloads}`);
  const target = packageRoot(pkg);
  const partial = `${target}.partial`;
  rmSync(partial, { recursive: true, force: true });
  run('dpkg', ['-x', join(downloads, deb), partial], { what: `dpkg -x ${deb}` });
  for (const binary of pkg.binaries) {
    if (!existsSync(join(partial, binary))) {
      throw new HarnessError(`${deb} has no ${binary}`);
    }
  }
  rmSync(target, { recursive: true, force: true });
  renameSync(partial, target);
  rmSync(join(downloads, deb), { force: true });
};

export const debianPackages: Action = {
  name: 'debian-packages',
  description:
    'fetch containerd, etcd, Prometheus and the PostgreSQL exporter from Debian trixie and unpack them (cached by version)',
  up: () => {
    for (const pkg of Object.values(trixiePackages)) {
      if (pkg.binaries.every((binary) => existsSync(join(packageRoot(pkg), binary)))) {
        console.log(`      ${pkg.name} ${version(pkg.versionPin)} cached`);
        continue;
      }
      fetchAndUnpack(pkg);
      console.log(`      ${pkg.name} ${version(pkg.versionPin)} unpacked into ${packageRoot(pkg)}`);
    }
  },
};
