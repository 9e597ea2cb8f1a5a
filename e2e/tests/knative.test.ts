/**
 * The functions as Knative Services on the test cluster, installed as knative/README.md says
 * (`kubectl apply -k knative/` into the chart's namespace), reached as users reach them:
 * through Traefik with TLS by host name, Traefik forwarding to Kourier with the Host header.
 */
import test from 'ava';
import {
  curlEdge,
  edgeCaFile,
  edgeHost,
  ensureKnativeServices,
  ensureRelease,
  kubectl,
  namespace,
  release,
} from './helpers/cluster.ts';

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
