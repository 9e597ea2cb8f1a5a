import test from 'ava';
import {
  curlEdge,
  edgeCaFile,
  edgeHost,
  ensureKnativeServices,
  ensureRelease,
  namespace,
  release,
  secretData,
} from './helpers/cluster.ts';

let caFile = '';

test.before(() => {
  ensureRelease(release, namespace);
  caFile = edgeCaFile();
});

test.serial(
  'Prometheus answers through the edge with TLS and its password, and only with it (cluster)',
  (t) => {
    const auth = secretData(namespace, `${release}-prometheus-basic-auth`);
    const url = `https://${edgeHost('prometheus')}/-/ready`;
    const ready = curlEdge(url, { caFile, user: `${auth.username}:${auth.password}` });
    t.is(ready.status, 200, ready.body);
    t.regex(ready.body, /Prometheus (Server )?is Ready/);
    const anonymous = curlEdge(url, { caFile });
    t.is(anonymous.status, 401);
    t.regex(anonymous.headers['www-authenticate'] ?? '', /^Basic realm="secretid prometheus"/);
    const wrong = curlEdge(url, { caFile, user: `${auth.username}:${auth.password}x` });
    t.is(wrong.status, 401);
    // The hardened headers come after the password check, on the answer people get.
    t.regex(ready.headers['strict-transport-security'] ?? '', /max-age=\d+/);
  },
);

test.serial('plain HTTP to a host of the chart is redirected to HTTPS (cluster)', (t) => {
  const plain = curlEdge(`http://${edgeHost('prometheus')}/-/ready`);
  t.true([301, 308].includes(plain.status), `status ${plain.status}`);
  t.is(plain.headers.location, `https://${edgeHost('prometheus')}/-/ready`);
  t.log(`plain HTTP answers ${plain.status} ${plain.headers.location}`);
});

test.serial(
  "the functions' /metrics is not served through the edge; Prometheus reads it inside the cluster (cluster)",
  (t) => {
    ensureKnativeServices();
    for (const name of ['api', 'web'] as const) {
      const metrics = curlEdge(`https://${edgeHost(name)}/metrics`, { caFile });
      t.is(metrics.status, 404, `${name}: ${metrics.body.slice(0, 200)}`);
      t.notRegex(metrics.body, /http_requests_total/);
      t.is(curlEdge(`https://${edgeHost(name)}/healthz`, { caFile }).status, 200, name);
    }
  },
);
