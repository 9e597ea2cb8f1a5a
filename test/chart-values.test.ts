/**
 * values.schema.json turns bad values away with a message naming the value, and the values
 * table in chart/README.md is generated from the comments of values.yaml and up to date.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import test from 'ava';
import { parse } from 'yaml';
import { documentChart, endMarker, startMarker } from '../scripts/chart-docs.ts';
import { type RenderOptions, renderChart, renderFailure } from './helpers/helm.ts';

const nfs = {
  'postgres.persistence.nfs.enabled': true,
  'postgres.persistence.nfs.server': 'nfs.cluster.internal',
  'postgres.persistence.nfs.path': '/srv/nfs/secretid/postgres',
};

/** Bad values, each with the JSON path and the words helm's message must contain. */
const badValues: [string, RenderOptions['set'], string, string][] = [
  ['PostgreSQL as root', { 'postgres.uid': 0 }, '/postgres/uid', 'minimum: got 0, want 1'],
  ['a port beyond 65535', { 'postgres.port': 70000 }, '/postgres/port', 'maximum'],
  ['a domain with capitals and _', { domain: 'UPPER_case' }, '/domain', 'does not match pattern'],
  ['a host label with a dot', { 'hosts.api': 'api.v2' }, '/hosts/api', 'does not match pattern'],
  [
    'an unknown TLS source',
    { 'edge.tls.source': 'selfsigned' },
    '/edge/tls/source',
    'value must be one of',
  ],
  [
    'TLS 1.0',
    { 'edge.tls.minVersion': 'VersionTLS10' },
    '/edge/tls/minVersion',
    'value must be one of',
  ],
  [
    'NFS without a server',
    { 'postgres.persistence.nfs.enabled': true },
    '/postgres/persistence/nfs/server',
    'minLength',
  ],
  [
    'a relative NFS path',
    { ...nfs, 'postgres.persistence.nfs.path': 'srv/data' },
    '/postgres/persistence/nfs/path',
    'does not match pattern',
  ],
  [
    'a soft NFS mount',
    { ...nfs, 'postgres.persistence.nfs.mountOptions': '{soft,nfsvers=4.1}' },
    '/postgres/persistence/nfs/mountOptions',
    'no items match contains',
  ],
  [
    'SQL as a role name',
    { 'credentials.roles.reader': 'drop table' },
    '/credentials/roles/reader',
    'does not match pattern',
  ],
  [
    'an unknown pull policy',
    { 'seed.image.pullPolicy': 'Sometimes' },
    '/seed/image/pullPolicy',
    'value must be one of',
  ],
  [
    'a misspelt top-level key',
    { 'postgress.uid': 999 },
    "at ''",
    "additional properties 'postgress' not allowed",
  ],
  [
    'a misspelt nested key',
    { 'edge.tls.minVerison': 'VersionTLS12' },
    '/edge/tls',
    "additional properties 'minVerison' not allowed",
  ],
  [
    'an existing TLS Secret without a name',
    { 'edge.tls.source': 'existingSecret' },
    '/edge/tls/existingSecret',
    'minLength',
  ],
  [
    'cert-manager without an issuer',
    { 'edge.tls.source': 'certManager' },
    '/edge/tls/certManager/issuerName',
    'minLength',
  ],
  [
    'PostgreSQL without limits',
    { 'postgres.resources.limits': null },
    '/postgres/resources',
    "missing property 'limits'",
  ],
  [
    'a memory request that is no quantity',
    { 'seed.resources.requests.memory': 'lots' },
    '/seed/resources/requests/memory',
    'does not match pattern',
  ],
  ['too few connections', { 'postgres.maxConnections': 5 }, '/postgres/maxConnections', 'minimum'],
  [
    'an invalid credentials Secret name',
    { 'credentials.existingSecret': 'Agency_Secret' },
    '/credentials/existingSecret',
    'does not match pattern',
  ],
  ['Kourier on port 0', { 'edge.kourier.port': 0 }, '/edge/kourier/port', 'minimum'],
];

for (const [what, set, path, message] of badValues) {
  test(`rejected with a readable message: ${what}`, (t) => {
    const { status, stderr } = renderFailure({ set });
    t.not(status, 0);
    t.true(stderr.includes("values don't meet the specifications of the schema"), stderr);
    t.true(stderr.includes(path.startsWith('at ') ? path : `at '${path}'`), stderr);
    t.true(stderr.includes(message), stderr);
  });
}

test('the same keys with good values render (the schema rejects values, not keys)', (t) => {
  const objects = renderChart({
    set: {
      ...nfs,
      'postgres.uid': 70,
      'postgres.port': 6543,
      domain: 'agents.example.org',
      'hosts.api': 'api-v2',
      'edge.tls.source': 'certManager',
      'edge.tls.certManager.issuerName': 'agency-issuer',
      'edge.tls.minVersion': 'VersionTLS13',
      'credentials.roles.reader': 'api_reader',
      'seed.image.pullPolicy': 'Always',
      'postgres.persistence.nfs.mountOptions': '{hard,nfsvers=4.2}',
      'seed.resources.requests.memory': '100Mi',
      'postgres.maxConnections': 200,
      'credentials.existingSecret': 'agency-secret',
      'edge.kourier.port': 8080,
    },
  });
  t.true(objects.some((object) => object.kind === 'Certificate'));
  t.true(objects.some((object) => object.kind === 'PersistentVolume'));
});

test('chart/README.md lists every value, as the generator writes it (node scripts/chart-docs.ts --check)', (t) => {
  const result = spawnSync(process.execPath, ['scripts/chart-docs.ts', '--check'], {
    encoding: 'utf8',
  });
  t.is(result.status, 0, result.stderr);
});

const values = readFileSync('chart/values.yaml', 'utf8');
const readme = `# chart\n\n${startMarker}\n${endMarker}\n`;

test('the generator puts every documented value with its default in the table', (t) => {
  const { problems, readme: written } = documentChart(values, readme);
  t.deepEqual(problems, []);
  t.true(
    written.includes('| `postgres.port` | `5432` | port of the PostgreSQL Service and server. |'),
  );
  t.true(
    written.includes(
      '| `postgres.persistence.nfs.mountOptions` | `["hard","nfsvers=4.1","noatime"]` |',
    ),
  );
  t.true(
    written.includes(
      '| `domain` | `"secretid"` | DNS domain of the public hosts: api.&lt;domain&gt;',
    ),
  );
  t.is(documentChart(values, written).readme, written, 'a second run changes nothing');
});

test('the generator reports a value without a comment and a comment without a value', (t) => {
  const undocumented = values.replace(/^ {2}# postgres\.port -- .*\n/m, '');
  t.deepEqual(documentChart(undocumented, readme).problems, [
    'postgres.port has no "# postgres.port -- <description>" comment',
  ]);
  const stray = `${values}\n# postgres.replicas -- how many servers.\n`;
  t.regex(
    documentChart(stray, readme).problems.join(),
    /names postgres\.replicas, which is not a value/,
  );
  const added = values.replace(/^seed:\n/m, 'seed:\n  timeoutSeconds: 30\n');
  t.deepEqual(documentChart(added, readme).problems, [
    'seed.timeoutSeconds has no "# seed.timeoutSeconds -- <description>" comment',
  ]);
});

test('the generator sees a stale table and refuses a README without markers', (t) => {
  const current = readFileSync('chart/README.md', 'utf8');
  const stale = current.replace('| `postgres.port` | `5432` |', '| `postgres.port` | `5433` |');
  t.not(stale, current);
  t.is(documentChart(values, stale).readme, current);
  t.throws(() => documentChart(values, '# chart\n'), { message: /needs <!-- values:start -->/ });
});

test("Prometheus's TSDB is bounded in size as well as in time, and a malformed size is refused", (t) => {
  const args = (set: Record<string, string> = {}) => {
    const deployment = renderChart({ set }).find(
      (object) => object.kind === 'Deployment' && object.metadata.name.endsWith('-prometheus'),
    );
    const spec = deployment?.spec as
      | { template: { spec: { containers: { args: string[] }[] } } }
      | undefined;
    return spec?.template.spec.containers[0]?.args ?? [];
  };
  t.true(args().includes('--storage.tsdb.retention.size=8GB'), args().join(' '));
  t.true(args({ 'prometheus.retentionSize': '2GB' }).includes('--storage.tsdb.retention.size=2GB'));
  t.false(args({ 'prometheus.retentionSize': '' }).some((arg) => arg.includes('retention.size')));
  const bad = renderFailure({ set: { 'prometheus.retentionSize': 'lots' } });
  t.not(bad.status, 0);
  t.regex(bad.stderr, /retentionSize/);
});

test("Prometheus sends alerts to the chart's Alertmanager, or to alertmanager.externalUrls instead", (t) => {
  const alerting = (set: Record<string, string>) => {
    const objects = renderChart({ set });
    const configMap = objects.find(
      (object) => object.kind === 'ConfigMap' && object.metadata.name.endsWith('-prometheus'),
    );
    const data = (configMap?.data ?? {}) as Record<string, string>;
    const config = parse(data['prometheus.yml'] ?? '');
    return {
      alertmanagers: config.alerting?.alertmanagers ?? [],
      runsOwn: objects.some(
        (object) => object.kind === 'Deployment' && object.metadata.name.endsWith('-alertmanager'),
      ),
    };
  };
  const own = alerting({});
  t.true(own.runsOwn);
  t.deepEqual(own.alertmanagers, [
    { static_configs: [{ targets: ['secretid-alertmanager.default.svc:9093'] }] },
  ]);
  const external = alerting({
    'alertmanager.enabled': 'false',
    'alertmanager.externalUrls[0]': 'https://alerts.agency.example:9443',
  });
  t.false(external.runsOwn);
  t.deepEqual(external.alertmanagers, [
    { scheme: 'https', static_configs: [{ targets: ['alerts.agency.example:9443'] }] },
  ]);
  t.deepEqual(alerting({ 'alertmanager.enabled': 'false' }).alertmanagers, []);
});
