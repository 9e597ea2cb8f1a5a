/**
 * The chart on the test cluster, as a person installs and runs it: `helm install` with no
 * values on a cluster whose default storage class is ReadWriteOnce only (local-path, as k3s
 * has it), the seed Job's data, the api role's privileges, `helm upgrade` keeping the
 * credentials and the edge CA, and `helm uninstall` keeping the data for a reinstall.
 */
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import test from 'ava';
import {
  chartDirectory,
  chartRole,
  edgeHost,
  eventually,
  helm,
  kubectl,
  kubectlJson,
  kubectlResult,
  namespace,
  psql,
  release,
  secretData,
  shellEnvironment,
} from './helpers/cluster.ts';

const postgresPod = `${release}-postgres-0`;
const credentials = `${release}-credentials`;
const tlsSecret = `${release}-tls`;

interface Claim {
  metadata: { name: string };
  spec: { accessModes: string[]; storageClassName: string };
  status: { phase: string };
}

test.before(() => {
  // A fresh start: the first test is a person's first install (other files may have
  // installed the release already).
  if (kubectlResult(['get', 'namespace', namespace]).status === 0) {
    helm(['uninstall', release, '-n', namespace, '--wait', '--ignore-not-found']);
    kubectl(['delete', 'namespace', namespace, '--wait', '--timeout=180s']);
  }
});

test.serial(
  'helm install with no values works on a cluster whose only default storage class is ReadWriteOnce (cluster)',
  (t) => {
    const started = Date.now();
    helm([
      'install',
      release,
      chartDirectory,
      '-n',
      namespace,
      '--create-namespace',
      '--wait',
      '--timeout',
      '5m',
    ]);
    t.log(`helm install --wait: ${((Date.now() - started) / 1000).toFixed(1)} s`);
    const claims = kubectlJson<{ items: Claim[] }>(['-n', namespace, 'get', 'pvc']).items;
    const backup = claims.find((claim) => claim.metadata.name === `${release}-backup`);
    t.truthy(backup, claims.map((claim) => claim.metadata.name).join(', '));
    t.deepEqual(backup?.spec.accessModes, ['ReadWriteOnce']);
    t.is(backup?.spec.storageClassName, 'local-path', 'the default class');
    t.true(
      claims.every((claim) => claim.status.phase === 'Bound'),
      JSON.stringify(claims.map((claim) => claim.status)),
    );
    t.is(
      kubectl([
        '-n',
        namespace,
        'get',
        'pod',
        postgresPod,
        '-o',
        'jsonpath={.status.containerStatuses[*].ready}',
      ]),
      'true true',
    );
  },
);

test.serial(
  'the seed Job filled the database: 500 + 500 first names and 1,000 last names (cluster)',
  (t) => {
    const counts = psql(
      namespace,
      postgresPod,
      "SELECT (SELECT count(*) FROM first_names WHERE sex = 'F') || ' ' || (SELECT count(*) FROM first_names WHERE sex = 'M') || ' ' || (SELECT count(*) FROM last_names)",
    );
    t.is(counts.status, 0, counts.stderr);
    t.is(counts.stdout.trim(), '500 500 1000');
  },
);

test.serial(
  "NOTES.txt's seed-log command, run as written after the install, shows the seed's log (cluster)",
  (t) => {
    const notes = helm(['get', 'notes', release, '-n', namespace]);
    const command = notes
      .split('\n')
      .map((line) => line.trim())
      .find((line) => line.startsWith('kubectl') && line.includes('logs job/'));
    t.truthy(command, notes);
    const result = spawnSync('sh', ['-c', command as string], {
      encoding: 'utf8',
      env: shellEnvironment(),
    });
    t.is(result.status, 0, `${command}: ${result.stderr}`);
    t.regex(result.stdout, /seed complete/);
  },
);

test.serial(
  "the api's database role reads the names, cannot write and connects nowhere else (cluster)",
  (t) => {
    const reader = chartRole('reader');
    t.truthy(reader.password);
    const read = psql(namespace, postgresPod, 'SELECT count(*) FROM last_names', reader);
    t.is(read.status, 0, read.stderr);
    t.is(read.stdout.trim(), '1000');
    // Its sessions start read-only; each write is tried in a read-write transaction, so what
    // refuses it is a missing privilege (the large object too: ensure-roles.sh took its
    // functions from PUBLIC).
    for (const statement of [
      "INSERT INTO last_names (name, rank, count) VALUES ('Moneypenny', 1001, 1)",
      'DELETE FROM first_names',
      'CREATE TABLE dossiers (id int)',
      'CREATE TEMPORARY TABLE notes (id int)',
      "SELECT lo_from_bytea(0, 'dossier')",
    ]) {
      const write = psql(namespace, postgresPod, `BEGIN READ WRITE; ${statement}`, reader);
      t.not(write.status, 0, statement);
      t.regex(write.stderr, /permission denied/, statement);
    }
    const readOnly = psql(namespace, postgresPod, 'DELETE FROM first_names', reader);
    t.regex(readOnly.stderr, /read-only transaction/);
    const elsewhere = psql(namespace, postgresPod, 'SELECT 1', { ...reader, database: 'postgres' });
    t.not(elsewhere.status, 0);
    t.regex(elsewhere.stderr, /permission denied for database/);
  },
);

test.serial(
  'helm upgrade with a changed value keeps the credentials and the edge CA (cluster)',
  (t) => {
    const credentialsBefore = secretData(namespace, credentials);
    const tlsBefore = secretData(namespace, tlsSecret);
    helm([
      'upgrade',
      release,
      chartDirectory,
      '-n',
      namespace,
      '--wait',
      '--timeout',
      '5m',
      '--set',
      'prometheus.retention=7d',
    ]);
    const args = kubectlJson<{
      spec: { template: { spec: { containers: Array<{ args: string[] }> } } };
    }>(['-n', namespace, 'get', 'deployment', `${release}-prometheus`]).spec.template.spec
      .containers[0]?.args;
    t.true(args?.includes('--storage.tsdb.retention.time=7d'), `${args}`);
    t.deepEqual(secretData(namespace, credentials), credentialsBefore);
    t.deepEqual(secretData(namespace, tlsSecret), tlsBefore);
  },
);

test.serial(
  'helm upgrade with another Knative tag keeps the edge CA and issues a certificate for the new host from it (cluster)',
  (t) => {
    const before = secretData(namespace, tlsSecret);
    const tags = ['candidate', 'beta'];
    helm([
      'upgrade',
      release,
      chartDirectory,
      '-n',
      namespace,
      '--wait',
      '--timeout',
      '5m',
      '--set',
      `edge.tls.tags={${tags.join(',')}}`,
    ]);
    const after = secretData(namespace, tlsSecret);
    t.is(after['ca.crt'], before['ca.crt'], 'the same CA: clients that trust it keep working');
    t.not(after['tls.crt'], before['tls.crt'], 'a new certificate');
    const leaf = new X509Certificate(after['tls.crt'] as string);
    const ca = new X509Certificate(after['ca.crt'] as string);
    t.true(leaf.verify(ca.publicKey), 'signed by the kept CA');
    t.truthy(leaf.checkHost(`beta-${edgeHost('api')}`), leaf.subjectAltName);
    // Back to the defaults for what follows; the CA stays the same again.
    helm(['upgrade', release, chartDirectory, '-n', namespace, '--wait', '--timeout', '5m']);
    t.is(secretData(namespace, tlsSecret)['ca.crt'], before['ca.crt']);
  },
);

test.serial(
  'helm uninstall keeps the data volume, the credentials and the edge CA, and a reinstall serves the same data (cluster)',
  async (t) => {
    const marker = `written before uninstall ${Date.now()}`;
    // As the owner role, like the seeder's migrations: the backup jobs dump what it owns.
    const owner = chartRole('owner');
    const write = psql(
      namespace,
      postgresPod,
      `CREATE TABLE IF NOT EXISTS e2e_marker (note text); INSERT INTO e2e_marker VALUES ('${marker}')`,
      owner,
    );
    t.is(write.status, 0, write.stderr);
    const credentialsBefore = secretData(namespace, credentials);
    const caBefore = secretData(namespace, tlsSecret)['ca.crt'];
    helm(['uninstall', release, '-n', namespace, '--wait']);
    await eventually(
      'the PostgreSQL pod to be gone',
      () => kubectlResult(['-n', namespace, 'get', 'pod', postgresPod]).status !== 0,
    );
    const kept = kubectlJson<{ items: Claim[] }>(['-n', namespace, 'get', 'pvc'])
      .items.map((claim) => claim.metadata.name)
      .sort();
    t.true(
      kept.includes(`${release}-postgres-data`) && kept.includes(`${release}-backup`),
      kept.join(', '),
    );
    t.deepEqual(secretData(namespace, credentials), credentialsBefore);

    helm(['install', release, chartDirectory, '-n', namespace, '--wait', '--timeout', '5m']);
    t.is(
      secretData(namespace, tlsSecret)['ca.crt'],
      caBefore,
      'the reinstall signs with the kept CA: clients that trust it need nothing new',
    );
    const read = psql(namespace, postgresPod, 'SELECT note FROM e2e_marker');
    t.is(read.status, 0, read.stderr);
    t.is(read.stdout.trim(), marker);
    t.deepEqual(secretData(namespace, credentials), credentialsBefore);
  },
);
