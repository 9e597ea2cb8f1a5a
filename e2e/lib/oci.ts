/**
 * Single-layer OCI image archives from a folder, with no registry and no Docker: the layer is
 * a gzipped tar of the folder (numeric owners, sorted names, fixed times, so the same folder
 * gives the same digest), plus the config, the manifest and an index that names the image
 * (`io.containerd.image.name`), which is what `ctr images import` needs.
 */
import { createHash } from 'node:crypto';
import {
  createReadStream,
  mkdirSync,
  mkdtempSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { run } from './run.ts';

export interface ImageConfig {
  /** e.g. localhost/secretid-e2e/pause:1 */
  reference: string;
  entrypoint?: string[];
  cmd?: string[];
  env?: Record<string, string>;
  workingDir?: string;
  /** uid or uid:gid */
  user?: string;
  exposedPorts?: number[];
  labels?: Record<string, string>;
  /** The signal the runtime stops the container with (containerd's CRI honours it). */
  stopSignal?: string;
}

const sha256File = (path: string) =>
  new Promise<string>((resolvePromise, reject) => {
    const hash = createHash('sha256');
    createReadStream(path)
      .on('data', (chunk) => hash.update(chunk))
      .on('end', () => resolvePromise(hash.digest('hex')))
      .on('error', reject);
  });

/** Writes an OCI layout tar of `rootfs` to `archive`; returns the manifest digest. */
export const buildImage = async (rootfs: string, archive: string, config: ImageConfig) => {
  mkdirSync(dirname(archive), { recursive: true });
  const work = mkdtempSync(join(dirname(archive), '.oci-'));
  try {
    const blobs = join(work, 'blobs', 'sha256');
    mkdirSync(blobs, { recursive: true });
    const layerTar = join(work, 'layer.tar');
    run(
      'tar',
      [
        '--numeric-owner',
        '--sort=name',
        '--mtime=@0',
        '--xattrs',
        '-C',
        rootfs,
        '-cf',
        layerTar,
        '.',
      ],
      {
        what: `tar of ${rootfs}`,
      },
    );
    const diffId = await sha256File(layerTar);
    run('gzip', ['-n', '-1', layerTar]);
    const layer = `${layerTar}.gz`;
    const layerDigest = await sha256File(layer);
    const layerSize = statSync(layer).size;
    renameSync(layer, join(blobs, layerDigest));
    const put = (value: unknown) => {
      const bytes = Buffer.from(JSON.stringify(value));
      const digest = createHash('sha256').update(bytes).digest('hex');
      writeFileSync(join(blobs, digest), bytes);
      return { digest: `sha256:${digest}`, size: bytes.length };
    };
    const imageConfig = put({
      created: '1970-01-01T00:00:00Z',
      architecture: 'amd64',
      os: 'linux',
      config: {
        Env: [
          'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
          ...Object.entries(config.env ?? {}).map(([key, value]) => `${key}=${value}`),
        ],
        WorkingDir: config.workingDir ?? '/',
        ...(config.entrypoint ? { Entrypoint: config.entrypoint } : {}),
        ...(config.cmd ? { Cmd: config.cmd } : {}),
        ...(config.user ? { User: config.user } : {}),
        ...(config.exposedPorts
          ? {
              ExposedPorts: Object.fromEntries(
                config.exposedPorts.map((port) => [`${port}/tcp`, {}]),
              ),
            }
          : {}),
        ...(config.labels ? { Labels: config.labels } : {}),
        ...(config.stopSignal ? { StopSignal: config.stopSignal } : {}),
      },
      rootfs: { type: 'layers', diff_ids: [`sha256:${diffId}`] },
      history: [
        { created: '1970-01-01T00:00:00Z', created_by: 'secretid e2e harness (e2e/lib/oci.ts)' },
      ],
    });
    const manifest = put({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...imageConfig },
      layers: [
        {
          mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
          digest: `sha256:${layerDigest}`,
          size: layerSize,
        },
      ],
    });
    const tag = config.reference.slice(config.reference.lastIndexOf(':') + 1);
    writeFileSync(
      join(work, 'index.json'),
      JSON.stringify({
        schemaVersion: 2,
        manifests: [
          {
            mediaType: 'application/vnd.oci.image.manifest.v1+json',
            ...manifest,
            annotations: {
              'io.containerd.image.name': config.reference,
              'org.opencontainers.image.ref.name': tag,
            },
            platform: { architecture: 'amd64', os: 'linux' },
          },
        ],
      }),
    );
    writeFileSync(join(work, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    const partial = `${archive}.partial`;
    run('tar', ['-C', work, '-cf', partial, 'oci-layout', 'index.json', 'blobs']);
    renameSync(partial, archive);
    return manifest.digest;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
};
