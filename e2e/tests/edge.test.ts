/**
 * The edge as users meet it: Traefik on the nodes' ports 80 and 443, the chart's routes and
 * TLS with the certificate signed by the CA the chart generates. (The functions' routes are
 * tested once they run as Knative Services.)
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { curlEdge, ensureRelease, secretData } from './helpers/cluster.ts';

const release = 'secretid';
const namespace = 'secretid';
const folder = mkdtempSync(join(tmpdir(), 'secretid-e2e-edge-'));
const caFile = join(folder, 'secretid-ca.crt');
test.after.always(() => rmSync(folder, { recursive: true, force: true }));

test.before(() => {
  ensureRelease(release, namespace);
  // As NOTES.txt says: the CA from the chart's TLS Secret.
  writeFileSync(caFile, secretData(namespace, `${release}-tls`)['ca.crt'] as string);
});

test.serial(
  'Prometheus answers through the edge with TLS and its password, and only with it (cluster)',
  (t) => {
    const auth = secretData(namespace, `${release}-prometheus-basic-auth`);
    const url = 'https://prometheus.secretid/-/ready';
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
  const plain = curlEdge('http://prometheus.secretid/-/ready');
  t.true([301, 308].includes(plain.status), `status ${plain.status}`);
  t.is(plain.headers.location, 'https://prometheus.secretid/-/ready');
  t.log(`plain HTTP answers ${plain.status} ${plain.headers.location}`);
});
