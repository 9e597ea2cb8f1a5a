/**
 * The functions as Knative Services on the test cluster, installed as knative/README.md says
 * (`kubectl apply --server-side ... -k knative/` into the chart's namespace), reached as users reach them:
 * through Traefik with TLS by host name, Traefik forwarding to Kourier with the Host header.
 */
import test from 'ava';
import { paths } from '../lib/settings.ts';
import {
  curlEdge,
  edgeCaFile,
  edgeHost,
  ensureKnativeServices,
  ensureRelease,
  kubectl,
  kubectlJson,
  namespace,
  release,
} from './helpers/cluster.ts';
import { runBlock, shellBlocks } from './helpers/docs.ts';

let caFile = '';

test.before(() => {
  ensureRelease(release, namespace);
  caFile = edgeCaFile();
});

test.serial(
  'kubectl apply -k knative/ into the chart namespace: both Knative Services become Ready (cluster)',
  (t) => {
    const seconds = ensureKnativeServices();
    t.log(`Ready ${seconds.toFixed(1)} s after kubectl apply -k`);
    const urls = kubectl([
      'get',
      '-n',
      namespace,
      'ksvc',
      'api',
      'web',
      '-o',
      'jsonpath={.items[*].status.url}',
    ]);
    t.is(
      urls,
      `https://${edgeHost('api')} https://${edgeHost('web')}`,
      'the domain template and https scheme of knative/platform',
    );
  },
);

test.serial('the api answers through the edge with TLS, by host name (cluster)', (t) => {
  const answer = curlEdge(`https://${edgeHost('api')}/randomName?gender=female`, { caFile });
  t.is(answer.status, 200, answer.body);
  const identity = JSON.parse(answer.body) as {
    firstName: string;
    lastName: string;
    fullName: string;
    gender: string;
  };
  t.is(identity.gender, 'female');
  t.is(identity.fullName, `${identity.firstName} ${identity.lastName}`);
  t.regex(answer.headers['strict-transport-security'] ?? '', /max-age=\d+/);
});

test.serial(
  'the page comes through the edge with an identity: the web reached the api inside the cluster (cluster)',
  (t) => {
    const page = curlEdge(`https://${edgeHost('web')}/`, { caFile });
    t.is(page.status, 200, page.body);
    t.regex(page.headers['content-type'] ?? '', /^text\/html/);
    const name = /<p class="full-name">([^<]+)<\/p>/.exec(page.body)?.[1];
    t.truthy(name, page.body.slice(0, 2000));
    t.regex(name ?? '', /^\S+ \S+/);
  },
);

/** What knative/platform and the harness set in Knative's objects, and the Deployments' generations. */
const platformState = () => {
  const configMaps = [
    'config-domain',
    'config-network',
    'config-autoscaler',
    'config-features',
    'config-observability',
    'config-deployment',
  ].map((name) => [
    name,
    kubectlJson<{ data?: Record<string, string> }>([
      '-n',
      'knative-serving',
      'get',
      'configmap',
      name,
    ]).data,
  ]);
  const field = (namespace: string, kind: string, name: string, path: string) =>
    kubectl(['-n', namespace, 'get', kind, name, '-o', `jsonpath=${path}`]);
  const generations = ['knative-serving', 'kourier-system'].flatMap((namespace) =>
    kubectlJson<{ items: Array<{ metadata: { name: string; generation: number } }> }>([
      '-n',
      namespace,
      'get',
      'deployments',
    ]).items.map(
      (deployment) => `${namespace}/${deployment.metadata.name}=${deployment.metadata.generation}`,
    ),
  );
  return {
    configMaps: Object.fromEntries(configMaps),
    kourierService: field('kourier-system', 'service', 'kourier', '{.spec.type}'),
    minimums: [
      field('knative-serving', 'hpa', 'activator', '{.spec.minReplicas}'),
      field('knative-serving', 'hpa', 'webhook', '{.spec.minReplicas}'),
      field('kourier-system', 'hpa', '3scale-kourier-gateway', '{.spec.minReplicas}'),
      field('knative-serving', 'pdb', 'activator-pdb', '{.spec.minAvailable}'),
      field('knative-serving', 'pdb', 'webhook-pdb', '{.spec.minAvailable}'),
      field('kourier-system', 'pdb', '3scale-kourier-gateway-pdb', '{.spec.minAvailable}'),
    ],
    generations: generations.sort(),
  };
};

test.serial(
  "a second full Knative deploy, knative/README.md's install steps run as written, changes nothing (cluster)",
  (t) => {
    const before = platformState();
    t.is(before.kourierService, 'ClusterIP');
    t.deepEqual(before.minimums, ['2', '2', '2', '1', '1', '1']);
    t.is(
      before.configMaps['config-network']?.['ingress-class'],
      'kourier.ingress.networking.knative.dev',
    );
    const [release, platform] = shellBlocks('knative/README.md', '## Install order');
    t.truthy(release && platform, 'the release step and the platform step');
    // The release files are the ones the harness applied (e2e/README.md, "Knative").
    const first = runBlock(release as string, { cwd: paths.knativeRelease });
    t.is(first.status, 0, first.output);
    // Before the platform step: the release step alone keeps Kourier's Service ClusterIP
    // (kourier.yaml as released would make it a LoadBalancer until step 2 ran).
    t.is(
      kubectl(['-n', 'kourier-system', 'get', 'service', 'kourier', '-o', 'jsonpath={.spec.type}']),
      'ClusterIP',
    );
    const second = runBlock(platform as string);
    t.is(second.status, 0, second.output);
    t.deepEqual(platformState(), before);
  },
);
