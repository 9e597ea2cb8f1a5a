import { spawnSync } from 'node:child_process';
import test from 'ava';
import {
  curlEdge,
  edgeAddress,
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

/** curl as typed by hand against the edge's address: status code and curl's exit status. */
const curlAddress = (args: string[]) => {
  const result = spawnSync(
    'curl',
    ['-sS', '--max-time', '20', '-o', '/dev/null', '-w', '%{http_code} %{redirect_url}', ...args],
    { encoding: 'utf8', timeout: 30_000 },
  );
  const [code = '0', location = ''] = result.stdout.trim().split(' ');
  return { exit: result.status, status: Number(code), location, stderr: result.stderr };
};

test.serial(
  'each form of curl docs/operations.md names gets the answer it says: Host header over HTTPS without SNI, over HTTP, and by name (cluster)',
  (t) => {
    ensureKnativeServices();
    const edge = edgeAddress();
    const api = edgeHost('api');
    // -k and a Host header against the address: no SNI, Traefik's default TLS options (the
    // chart's), its default certificate (-k), then the router by Host.
    const bare = curlAddress(['-k', '-H', `Host: ${api}`, `https://${edge}/randomName`]);
    t.is(bare.status, 200, bare.stderr);
    const plain = curlAddress(['-H', `Host: ${api}`, `http://${edge}/randomName`]);
    t.is(plain.status, 301, plain.stderr);
    t.is(plain.location, `https://${api}/randomName`);
    const named = curlAddress([
      '--cacert',
      caFile,
      '--resolve',
      `${api}:443:${edge}`,
      `https://${api}/randomName`,
    ]);
    t.is(named.status, 200, named.stderr);
  },
);

test.serial(
  'the hardened TLS settings hold for every host: a tag host and a client without SNI refuse a CBC suite (cluster)',
  (t) => {
    const edge = edgeAddress();
    const tagHost = `candidate-${edgeHost('api')}`;
    // Suites Go (and so Traefik's own defaults) still offers, which the chart's options leave out.
    const cbc = ['--tls-max', '1.2', '--ciphers', 'ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES128-SHA'];
    for (const target of [
      ['--resolve', `${tagHost}:443:${edge}`, `https://${tagHost}/randomName`],
      ['-H', `Host: ${edgeHost('api')}`, `https://${edge}/randomName`],
    ]) {
      const refused = curlAddress(['-k', ...cbc, ...target]);
      t.is(refused.exit, 35, `TLS handshake refused: ${target.join(' ')} ${refused.stderr}`);
      const aead = curlAddress(['-k', '--tls-max', '1.2', ...target]);
      t.not(aead.status, 0, `an AEAD suite is accepted: ${target.join(' ')} ${aead.stderr}`);
    }
  },
);
