/**
 * Container images built on the machine into OCI archives in the cache (one per name and tag),
 * to be imported into every node's containerd: there is no registry. Each image's tag is a
 * digest of what it is built from, so a changed input gives a new tag and an unchanged one
 * reuses the cached archive.
 */
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Action } from '../lib/action.ts';
import { buildImage, type ImageConfig } from '../lib/oci.ts';
import { run } from '../lib/run.ts';
import { cacheDirectory, repositoryRoot } from '../lib/settings.ts';

export interface ImageDefinition {
  /** Repository part of the reference, e.g. localhost/secretid-e2e/pause */
  repository: string;
  /** Everything the image is built from, hashed into its tag. */
  inputs: () => string[];
  /** Fills the image's root folder. */
  build: (rootfs: string) => Promise<void> | void;
  config: Omit<ImageConfig, 'reference'>;
}

const digestOf = (parts: string[]) =>
  createHash('sha256').update(parts.join('\0')).digest('hex').slice(0, 12);

export const imageTag = (image: ImageDefinition) =>
  digestOf([JSON.stringify(image.config), ...image.inputs()]);
export const imageReference = (image: ImageDefinition) => `${image.repository}:${imageTag(image)}`;
const archiveOf = (image: ImageDefinition) =>
  join(cacheDirectory, 'images', `${image.repository.split('/').pop()}-${imageTag(image)}.tar`);

const pauseSource = join(repositoryRoot, 'e2e', 'images', 'pause.c');

/** The pod sandbox image: one static binary. */
export const pauseImage: ImageDefinition = {
  repository: 'localhost/secretid-e2e/pause',
  inputs: () => [readFileSync(pauseSource, 'utf8')],
  build: (rootfs) => {
    run(
      'gcc',
      [
        '-static',
        '-O2',
        '-Wall',
        '-Wextra',
        '-Werror',
        '-s',
        '-o',
        join(rootfs, 'pause'),
        pauseSource,
      ],
      {
        what: 'gcc -static pause.c',
        fix: 'install gcc and libc6-dev (static glibc)',
      },
    );
    chmodSync(join(rootfs, 'pause'), 0o755);
  },
  config: { entrypoint: ['/pause'], user: '65535:65535' },
};

/** Every image the nodes get, in import order. */
export const clusterImages: ImageDefinition[] = [pauseImage];

/** Builds an image's archive unless the cache has it; returns the archive path. */
export const ensureImage = async (image: ImageDefinition) => {
  const archive = archiveOf(image);
  if (existsSync(archive)) return archive;
  const root = mkdtempSync(join(cacheDirectory, 'images', '.rootfs-'));
  try {
    await image.build(root);
    await buildImage(root, archive, { ...image.config, reference: imageReference(image) });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  return archive;
};

export const images: Action = {
  name: 'images',
  description: 'build the images the cluster runs into OCI archives (cached by content)',
  up: async () => {
    mkdirSync(join(cacheDirectory, 'images'), { recursive: true });
    for (const image of clusterImages) {
      const cached = existsSync(archiveOf(image));
      const started = Date.now();
      await ensureImage(image);
      console.log(
        `      ${imageReference(image)} ${cached ? 'cached' : `built in ${((Date.now() - started) / 1000).toFixed(1)} s`}`,
      );
    }
  },
};

export const imageArchives = () =>
  clusterImages.map((image) => ({ reference: imageReference(image), archive: archiveOf(image) }));
