/**
 * Container images built on the machine into OCI archives in the cache, imported into every
 * node's containerd: there is no registry. An image is imported under the names the chart
 * and knative/ use (e.g. docker.io/library/postgres:15-bookworm), so they install with their
 * own defaults; the images the harness alone uses get a localhost/secretid-e2e/ name. Each
 * archive is keyed by a digest of what it is built from, so a changed input is rebuilt and
 * an unchanged one comes from the cache. The README's table says how each differs from the
 * official image it stands in for.
 */
import { createHash } from 'node:crypto';
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import type { Action } from '../lib/action.ts';
import { chartImage } from '../lib/chart.ts';
import { buildImage, type ImageConfig } from '../lib/oci.ts';
import { addUser, debianRoot } from '../lib/rootfs.ts';
import { HarnessError, run } from '../lib/run.ts';
import { cacheDirectory, repositoryRoot } from '../lib/settings.ts';
import { packageBinary } from './debian-packages.ts';
import { goBinary } from './go-binaries.ts';
import { traefikFiles } from './traefik-files.ts';
import { wheelBinary } from './wheels.ts';

export interface ImageDefinition {
  /** Short name, for messages and the archive's file name. */
  name: string;
  /** Every name the image is imported under; the first is its own. */
  references: () => string[];
  /** Everything the image is built from, hashed into the archive's key. */
  inputs: () => string[];
  /** Fills the image's root folder. */
  build: (rootfs: string) => Promise<void> | void;
  config: Omit<ImageConfig, 'reference'>;
}

const digestOf = (parts: string[]) =>
  createHash('sha256').update(parts.join('\0')).digest('hex').slice(0, 12);
/** A digest of every file under a folder (names and contents). */
const folderDigest = (folder: string): string => {
  if (!existsSync(folder))
    throw new HarnessError(`${folder} does not exist`, 'npm run build (npm test runs it first)');
  const hash = createHash('sha256');
  const walk = (path: string) => {
    for (const entry of readdirSync(path).sort()) {
      const full = join(path, entry);
      hash.update(full.slice(folder.length));
      if (statSync(full).isDirectory()) walk(full);
      else hash.update(readFileSync(full));
    }
  };
  walk(folder);
  return hash.digest('hex');
};

const fileDigests = new Map<string, string>();
/** A file's sha256, computed once per run (binaries are large). */
const fileDigest = (path: string) => {
  let digest = fileDigests.get(path);
  if (!digest) {
    digest = createHash('sha256').update(readFileSync(path)).digest('hex');
    fileDigests.set(path, digest);
  }
  return digest;
};

export const imageDigest = (image: ImageDefinition) =>
  digestOf([image.name, JSON.stringify(image.config), ...image.inputs()]);
export const imageReferences = (image: ImageDefinition) => image.references();
const archiveOf = (image: ImageDefinition) =>
  join(cacheDirectory, 'images', `${image.name}-${imageDigest(image)}.tar`);
const harnessReference = (image: ImageDefinition) =>
  `localhost/secretid-e2e/${image.name}:${imageDigest(image)}`;
const imageSources = join(repositoryRoot, 'e2e', 'images');

/** The pod sandbox image: one static binary. */
export const pauseImage: ImageDefinition = {
  name: 'pause',
  references: () => [harnessReference(pauseImage)],
  inputs: () => [readFileSync(join(imageSources, 'pause.c'), 'utf8')],
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
        join(imageSources, 'pause.c'),
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

/** The name containerd will know a chart image by. */
const chartImageReference = (component: string) => {
  const { repository, tag } = chartImage(component);
  return normalise(`${repository}:${tag}`);
};
/** The name containerd gives an image reference (docker.io/library/ for bare names). */
export const normalise = (reference: string) => {
  const first = reference.split('/')[0] ?? '';
  if (!reference.includes('/')) return `docker.io/library/${reference}`;
  if (!first.includes('.') && !first.includes(':') && first !== 'localhost')
    return `docker.io/${reference}`;
  return reference;
};

/** PostgreSQL at the chart's major, from Debian, uid 999 like the official image. */
export const postgresImage: ImageDefinition = {
  name: 'postgres',
  references: () => [chartImageReference('postgres')],
  inputs: () => [readFileSync(join(imageSources, 'postgres-entrypoint.sh'), 'utf8')],
  build: async (rootfs) => {
    await debianRoot(rootfs, ['postgresql-15', 'postgresql-client-15'], {
      key: 'postgres uid 999, no main cluster',
      run: (root) => {
        addUser(root, 'postgres', 999, '/var/lib/postgresql');
        mkdirSync(join(root, 'etc/postgresql-common'), { recursive: true });
        cpSync(
          join(imageSources, 'postgres-createcluster.conf'),
          join(root, 'etc/postgresql-common/createcluster.conf'),
        );
      },
    });
    cpSync(
      join(imageSources, 'postgres-entrypoint.sh'),
      join(rootfs, 'usr/local/bin/docker-entrypoint.sh'),
    );
    chmodSync(join(rootfs, 'usr/local/bin/docker-entrypoint.sh'), 0o755);
    for (const folder of ['var/run/postgresql', 'var/lib/postgresql/data']) {
      mkdirSync(join(rootfs, folder), { recursive: true });
      run('chown', ['999:999', join(rootfs, folder)]);
    }
    chmodSync(join(rootfs, 'var/run/postgresql'), 0o3775);
  },
  config: {
    entrypoint: ['docker-entrypoint.sh'],
    cmd: ['postgres'],
    env: {
      PATH: '/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      PGDATA: '/var/lib/postgresql/data',
      LANG: 'C.UTF-8',
    },
    user: '999:999',
    exposedPorts: [5432],
    // As the official image: SIGINT is PostgreSQL's fast shutdown (sessions ended, checkpoint,
    // exit). SIGTERM would be the smart one, which waits for every client to disconnect: the
    // api's pooled connections never do, so a deleted pod took its whole grace period (60 s).
    stopSignal: 'SIGINT',
  },
};

const nodeBinary = join(repositoryRoot, 'node_modules', 'node', 'bin', 'node');
const nodeVersion = () => run(nodeBinary, ['--version']).stdout.trim();

/** One of the project's functions: Debian + the project's pinned Node + one dist/ bundle. */
const functionImage = (
  name: string,
  bundle: string,
  references: () => string[],
): ImageDefinition => {
  const image: ImageDefinition = {
    name,
    references,
    inputs: () => [nodeVersion(), folderDigest(join(repositoryRoot, 'dist', bundle))],
    build: async (rootfs) => {
      await debianRoot(rootfs, ['ca-certificates'], {
        key: 'node uid 1000',
        run: (root) => addUser(root, 'node', 1000, '/home/node'),
      });
      cpSync(nodeBinary, join(rootfs, 'usr/local/bin/node'));
      chmodSync(join(rootfs, 'usr/local/bin/node'), 0o755);
      cpSync(join(repositoryRoot, 'dist', bundle), join(rootfs, 'app'), { recursive: true });
    },
    config: {
      cmd: ['node', 'server.mjs'],
      env: { NODE_ENV: 'production', PORT: '8080' },
      workingDir: '/app',
      user: '1000:1000',
      exposedPorts: [8080],
    },
  };
  return image;
};

/** The kustomization's name and tag of a function image (knative/kustomization.yaml). */
const knativeImage = (name: string) => {
  const text = readFileSync(join(repositoryRoot, 'knative', 'kustomization.yaml'), 'utf8');
  const block = new RegExp(
    `- name: ${name}\\n\\s+newName: (\\S+)\\n\\s+newTag: "?([^"\\n]+)"?`,
  ).exec(text);
  if (!block?.[1] || !block[2])
    throw new HarnessError(`knative/kustomization.yaml has no image ${name}`);
  return normalise(`${block[1]}:${block[2]}`);
};

/**
 * The image docs/operations.md's canary deploys as the api's next version: on this cluster the
 * same api image under that name too, so the section's commands run as written.
 */
export const canaryImage = 'secretid-api:0.2.0';
export const apiImage = functionImage('secretid-api', 'api', () => [
  knativeImage('secretid-api'),
  normalise(canaryImage),
]);
export const webImage = functionImage('secretid-web', 'web', () => [knativeImage('secretid-web')]);
export const seedImage: ImageDefinition = {
  ...functionImage('secretid-seed', 'db-seed', () => [chartImageReference('seed')]),
  config: {
    cmd: ['node', 'seed.mjs'],
    env: { NODE_ENV: 'production' },
    workingDir: '/app',
    user: '1000:1000',
  },
};

/** A static program alone in an image (plus /etc/passwd and /tmp), running as `uid`. */
const staticProgramImage = (name: string, binary: () => string, uid: number): ImageDefinition => {
  const image: ImageDefinition = {
    name,
    references: () => [harnessReference(image)],
    inputs: () => [fileDigest(binary())],
    build: (rootfs) => {
      const file = binary().split('/').pop() as string;
      mkdirSync(join(rootfs, 'etc'), { recursive: true });
      mkdirSync(join(rootfs, 'tmp'), { mode: 0o1777 });
      cpSync(binary(), join(rootfs, file));
      chmodSync(join(rootfs, file), 0o755);
      writeFileSync(
        join(rootfs, 'etc/passwd'),
        `root:x:0:0:root:/:/sbin/nologin\nnonroot:x:${uid}:${uid}:nonroot:/:/sbin/nologin\n`,
      );
      writeFileSync(join(rootfs, 'etc/group'), `root:x:0:\nnonroot:x:${uid}:\n`);
    },
    config: { entrypoint: [`/${binary().split('/').pop()}`], user: `${uid}:${uid}` },
  };
  return image;
};

export const corednsImage = staticProgramImage('coredns', () => goBinary('coredns'), 0);
export const localPathImage = staticProgramImage(
  'local-path-provisioner',
  () => goBinary('localPath'),
  0,
);
export const traefikImage = staticProgramImage('traefik', traefikFiles.binary, 65532);

/**
 * kube-state-metrics with the machine's time zone files, as its release image (distroless
 * static) carries tzdata: the chart sets its TZ to backup.timeZone, which it loads from them.
 */
const zoneinfo = '/usr/share/zoneinfo';
const kubeStateMetricsBase = staticProgramImage(
  'kube-state-metrics',
  () => goBinary('kubeStateMetrics'),
  65534,
);
export const kubeStateMetricsImage: ImageDefinition = {
  ...kubeStateMetricsBase,
  references: () => [chartImageReference('kubeStateMetrics')],
  inputs: () => [...kubeStateMetricsBase.inputs(), folderDigest(zoneinfo)],
  build: async (rootfs) => {
    await kubeStateMetricsBase.build(rootfs);
    cpSync(zoneinfo, join(rootfs, zoneinfo), { recursive: true, verbatimSymlinks: true });
  },
};
/** A program from a trixie package on a bookworm root (its libc is new enough). */
const debianProgramImage = (
  name: string,
  component: string,
  binary: () => string,
  config: ImageDefinition['config'],
  folders: string[] = [],
): ImageDefinition => ({
  name,
  references: () => [chartImageReference(component)],
  inputs: () => [fileDigest(binary())],
  build: async (rootfs) => {
    await debianRoot(rootfs, []);
    cpSync(binary(), join(rootfs, 'usr/local/bin', binary().split('/').pop() as string));
    for (const folder of folders) {
      mkdirSync(join(rootfs, folder), { recursive: true });
      run('chown', ['65534:65534', join(rootfs, folder)]);
    }
  },
  config,
});

/** Prometheus run like the official image: as nobody, data in /prometheus. */
export const prometheusImage = debianProgramImage(
  'prometheus',
  'prometheus',
  () => packageBinary('prometheus', 'prometheus'),
  {
    entrypoint: ['/usr/local/bin/prometheus'],
    user: '65534:65534',
    workingDir: '/prometheus',
    exposedPorts: [9090],
  },
  ['prometheus'],
);
export const postgresExporterImage = debianProgramImage(
  'postgres-exporter',
  'postgresExporter',
  () => packageBinary('postgresExporter', 'prometheus-postgres-exporter'),
  {
    entrypoint: ['/usr/local/bin/prometheus-postgres-exporter'],
    user: '65534:65534',
    exposedPorts: [9187],
  },
);

/**
 * Alertmanager run like the official image: as nobody, state in /alertmanager. Debian's build
 * reads its notification templates from /usr/share/prometheus/alertmanager (the official
 * image has them compiled in), so that folder comes along.
 */
const alertmanagerProgram = debianProgramImage(
  'alertmanager',
  'alertmanager',
  () => packageBinary('alertmanager', 'prometheus-alertmanager'),
  {
    entrypoint: ['/usr/local/bin/prometheus-alertmanager'],
    user: '65534:65534',
    workingDir: '/alertmanager',
    exposedPorts: [9093],
  },
  ['alertmanager'],
);
const alertmanagerShare = () =>
  join(
    dirname(dirname(packageBinary('alertmanager', 'prometheus-alertmanager'))),
    'share/prometheus/alertmanager',
  );
export const alertmanagerImage: ImageDefinition = {
  ...alertmanagerProgram,
  inputs: () => [
    ...alertmanagerProgram.inputs(),
    fileDigest(join(alertmanagerShare(), 'default.tmpl')),
  ],
  build: async (rootfs) => {
    await alertmanagerProgram.build(rootfs);
    cpSync(alertmanagerShare(), join(rootfs, 'usr/share/prometheus/alertmanager'), {
      recursive: true,
    });
  },
};

/** The blackbox exporter run like the official image: as nobody, for the synthetic probe. */
export const blackboxExporterImage = debianProgramImage(
  'blackbox-exporter',
  'probe',
  () => packageBinary('blackboxExporter', 'prometheus-blackbox-exporter'),
  {
    entrypoint: ['/usr/local/bin/prometheus-blackbox-exporter'],
    user: '65534:65534',
    exposedPorts: [9115],
  },
);

/** A small Debian userland: local-path's helper pods, and the tests' client pods (curl). */
export const toolboxImage: ImageDefinition = {
  name: 'toolbox',
  references: () => [harnessReference(toolboxImage)],
  inputs: () => ['curl ca-certificates'],
  build: (rootfs) => debianRoot(rootfs, ['curl', 'ca-certificates']),
  config: { cmd: ['sleep', 'infinity'] },
};

/** Knative's components: static binaries, run as 65532 like the release's images. */
const knativeComponent = (binary: string, key: 'knativeServing' | 'netKourier') =>
  staticProgramImage(`knative-${binary}`, () => goBinary(key, binary), 65532);
const knativeServingImages = Object.fromEntries(
  ['controller', 'webhook', 'activator', 'autoscaler', 'queue'].map((binary) => [
    `knative.dev/serving/cmd/${binary}`,
    knativeComponent(binary, 'knativeServing'),
  ]),
);
const kourierImage = knativeComponent('kourier', 'netKourier');

/** Envoy for Kourier's gateway: the wheel's binary on a Debian root with sh and curl (its preStop). */
export const envoyImage: ImageDefinition = {
  name: 'envoy',
  references: () => [harnessReference(envoyImage)],
  inputs: () => [fileDigest(wheelBinary('envoy')), 'curl ca-certificates'],
  build: async (rootfs) => {
    await debianRoot(rootfs, ['curl', 'ca-certificates']);
    cpSync(wheelBinary('envoy'), join(rootfs, 'usr/local/bin/envoy'));
    chmodSync(join(rootfs, 'usr/local/bin/envoy'), 0o755);
  },
  config: { entrypoint: ['/usr/local/bin/envoy'], user: '65534:65534' },
};

/** The image for each ko:// reference of the Knative manifests, and Kourier's Envoy. */
export const knativeImages = (): Record<string, ImageDefinition> => ({
  ...knativeServingImages,
  'knative.dev/net-kourier/cmd/kourier': kourierImage,
  envoy: envoyImage,
});

/** Every image the nodes get, in import order. */
export const clusterImages: ImageDefinition[] = [
  pauseImage,
  toolboxImage,
  corednsImage,
  localPathImage,
  traefikImage,
  postgresImage,
  postgresExporterImage,
  prometheusImage,
  alertmanagerImage,
  blackboxExporterImage,
  kubeStateMetricsImage,
  seedImage,
  apiImage,
  webImage,
  ...Object.values(knativeServingImages),
  kourierImage,
  envoyImage,
];

/** Builds an image's archive unless the cache has it; returns the archive path. */
export const ensureImage = async (image: ImageDefinition) => {
  const archive = archiveOf(image);
  if (existsSync(archive)) return archive;
  mkdirSync(join(cacheDirectory, 'images'), { recursive: true });
  const root = mkdtempSync(join(cacheDirectory, 'images', '.rootfs-'));
  try {
    await image.build(root);
    const [own] = imageReferences(image);
    await buildImage(root, archive, { ...image.config, reference: own as string });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  return archive;
};

export const images: Action = {
  name: 'images',
  description: 'build the images the cluster runs into OCI archives (cached by content)',
  up: async () => {
    for (const image of clusterImages) {
      const cached = existsSync(archiveOf(image));
      const started = Date.now();
      await ensureImage(image);
      console.log(
        `      ${imageReferences(image).join(', ')} ${cached ? 'cached' : `built in ${((Date.now() - started) / 1000).toFixed(1)} s`}`,
      );
    }
  },
};

/** Each image's archive and the names to give it after import. */
export const imageArchives = () =>
  clusterImages.map((image) => ({ references: imageReferences(image), archive: archiveOf(image) }));
