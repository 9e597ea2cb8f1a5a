/**
 * Debian root folders for the images: `debootstrap --variant=minbase bookworm` once, then per
 * package set a copy with those packages installed in a chroot (services never start: a
 * policy-rc.d refuses them). Each result is cached as a tarball keyed by its package list, so
 * an image whose own files change does not fetch packages again.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run, runLong } from './run.ts';
import { cacheDirectory } from './settings.ts';

const rootfsCache = join(cacheDirectory, 'rootfs');
export const debianSuite = 'bookworm';
const mirror = 'http://deb.debian.org/debian';

const baseTarball = () => join(rootfsCache, `${debianSuite}-minbase.tar`);

const ensureBase = async () => {
  if (existsSync(baseTarball())) return baseTarball();
  mkdirSync(rootfsCache, { recursive: true });
  const root = mkdtempSync(join(rootfsCache, '.debootstrap-'));
  try {
    console.log(`      debootstrap --variant=minbase ${debianSuite} (about 30 s, once)`);
    await runLong('debootstrap', ['--variant=minbase', debianSuite, root, mirror], {
      what: `debootstrap ${debianSuite}`,
      fix: 'apt-get install debootstrap; check that deb.debian.org answers',
    });
    const partial = `${baseTarball()}.partial`;
    run('tar', ['--numeric-owner', '-C', root, '-cf', partial, '.']);
    renameSync(partial, baseTarball());
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  return baseTarball();
};

/**
 * Fills `target` with a Debian root that has `packages` installed (cached by the sorted list).
 * `prepare` runs before apt (e.g. to write a setting a package's install script reads).
 */
export const debianRoot = async (
  target: string,
  packages: string[],
  prepare?: { key: string; run: (root: string) => void },
) => {
  const base = await ensureBase();
  const sorted = [...packages].sort();
  if (sorted.length === 0 && !prepare) {
    run('tar', ['--numeric-owner', '-C', target, '-xf', base]);
    return;
  }
  const key = createHash('sha256')
    .update([...sorted, prepare?.key ?? ''].join('\n'))
    .digest('hex')
    .slice(0, 12);
  const tarball = join(rootfsCache, `${debianSuite}-${key}.tar`);
  if (!existsSync(tarball)) {
    const root = mkdtempSync(join(rootfsCache, '.packages-'));
    try {
      run('tar', ['--numeric-owner', '-C', root, '-xf', base]);
      prepare?.run(root);
      writeFileSync(join(root, 'usr/sbin/policy-rc.d'), '#!/bin/sh\nexit 101\n', { mode: 0o755 });
      run('cp', ['/etc/resolv.conf', join(root, 'etc/resolv.conf')]);
      const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive', LC_ALL: 'C' };
      console.log(`      apt-get install ${sorted.join(' ')} in a chroot`);
      await runLong('chroot', [root, 'apt-get', 'update', '-qq'], {
        what: 'apt-get update in the image root',
        env,
      });
      await runLong(
        'chroot',
        [root, 'apt-get', 'install', '-y', '-qq', '--no-install-recommends', ...sorted],
        {
          what: `apt-get install ${sorted.join(' ')}`,
          env,
          fix: 'check the package names against Debian bookworm',
        },
      );
      run('chroot', [root, 'apt-get', 'clean']);
      for (const leftover of [
        'var/lib/apt/lists',
        'usr/sbin/policy-rc.d',
        'etc/resolv.conf',
        'var/log',
      ]) {
        rmSync(join(root, leftover), { recursive: true, force: true });
      }
      mkdirSync(join(root, 'var/lib/apt/lists/partial'), { recursive: true });
      mkdirSync(join(root, 'var/log'), { recursive: true });
      writeFileSync(join(root, 'etc/resolv.conf'), '');
      const partial = `${tarball}.partial`;
      run('tar', ['--numeric-owner', '-C', root, '-cf', partial, '.']);
      renameSync(partial, tarball);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  }
  run('tar', ['--numeric-owner', '-C', target, '-xf', tarball]);
};

/** Adds a user and group with fixed ids to a root's /etc/passwd and /etc/group (no chroot). */
export const addUser = (root: string, name: string, id: number, home = '/nonexistent') => {
  run('chroot', [root, 'groupadd', '--system', '--gid', String(id), name]);
  run('chroot', [
    root,
    'useradd',
    '--system',
    '--uid',
    String(id),
    '--gid',
    String(id),
    '--home-dir',
    home,
    '--no-create-home',
    '--shell',
    '/usr/sbin/nologin',
    name,
  ]);
};
