/**
 * The chart's backups on the test cluster: a Job made from each backup CronJob (as
 * docs/disaster-recovery.md does it) succeeds, on PostgreSQL's node since the backup volume is
 * ReadWriteOnce there, and writes a checksummed dump and a base backup; WAL segments reach the
 * archive, which records the database system it belongs to.
 */
import test from 'ava';
import {
  ensureRelease,
  eventually,
  kubectl,
  kubectlResult,
  namespace,
  psql,
  release,
} from './helpers/cluster.ts';

const postgresPod = `${release}-postgres-0`;
/** A command in the PostgreSQL container, which mounts the backup volume at /backup. */
const inPostgres = (command: string) =>
  kubectl([
    '-n',
    namespace,
    'exec',
    postgresPod,
    '-c',
    'postgres',
    '--',
    'sh',
    '-c',
    command,
  ]).trim();

const runJobFrom = async (cronJob: string, job: string) => {
  kubectlResult(['-n', namespace, 'delete', 'job', job, '--ignore-not-found', '--wait']);
  kubectl(['-n', namespace, 'create', 'job', `--from=cronjob/${cronJob}`, job]);
  const outcome = await eventually(
    `job ${job} to complete or fail`,
    () => {
      const conditions = kubectl([
        '-n',
        namespace,
        'get',
        'job',
        job,
        '-o',
        'jsonpath={range .status.conditions[*]}{.type}={.status} {end}',
      ]);
      if (conditions.includes('Complete=True')) return 'Complete';
      if (conditions.includes('Failed=True')) return 'Failed';
      return undefined;
    },
    300_000,
  );
  const log = kubectlResult(['-n', namespace, 'logs', `job/${job}`]).stdout;
  const node = kubectl([
    '-n',
    namespace,
    'get',
    'pods',
    '-l',
    `job-name=${job}`,
    '-o',
    'jsonpath={.items[0].spec.nodeName}',
  ]);
  return { outcome, log, node };
};

test.before(() => ensureRelease(release, namespace));

test.serial(
  "a Job from the dump CronJob writes a dump whose checksum verifies, on PostgreSQL's node (cluster)",
  async (t) => {
    const job = await runJobFrom(`${release}-backup`, 'e2e-dump');
    t.is(job.outcome, 'Complete', job.log);
    const written = /wrote (\/backup\/dumps\/\S+\.dump):/.exec(job.log)?.[1];
    t.truthy(written, job.log);
    const postgresNode = kubectl([
      '-n',
      namespace,
      'get',
      'pod',
      postgresPod,
      '-o',
      'jsonpath={.spec.nodeName}',
    ]);
    t.is(job.node, postgresNode, 'the ReadWriteOnce backup volume is used on one node');
    t.is(
      inPostgres(`cd /backup/dumps && sha256sum -c ${written?.split('/').pop()}.sha256`),
      `${written?.split('/').pop()}: OK`,
    );
  },
);

test.serial(
  'a Job from the base-backup CronJob writes a verified base backup; WAL reaches the archive (cluster)',
  async (t) => {
    const job = await runJobFrom(`${release}-basebackup`, 'e2e-basebackup');
    t.is(job.outcome, 'Complete', job.log);
    t.regex(job.log, /verified: every file of base\.tar\.gz matches its SHA256/);
    const backup = /wrote (\/backup\/base\/\d{8}T\d{6}Z):/.exec(job.log)?.[1];
    t.truthy(backup, job.log);
    const files = inPostgres(`ls ${backup}`).split('\n');
    for (const file of ['START_WAL', 'backup_info', 'backup_manifest', 'base.tar.gz'])
      t.true(files.includes(file), files.join(' '));
    const system = psql(
      namespace,
      postgresPod,
      'SELECT system_identifier FROM pg_control_system()',
    ).stdout.trim();
    t.true(inPostgres(`cat ${backup}/backup_info`).includes(`SYSTEM_IDENTIFIER=${system}`));
    t.is(inPostgres('cat /backup/wal/SYSTEM_IDENTIFIER'), system);
    const startWal = inPostgres(`cat ${backup}/START_WAL`);
    t.regex(inPostgres('ls /backup/wal'), new RegExp(startWal));
    const archiver = psql(
      namespace,
      postgresPod,
      "SELECT archived_count || ' ' || failed_count FROM pg_stat_archiver",
    ).stdout.trim();
    const [archived, failed] = archiver.split(' ').map(Number);
    t.true((archived ?? 0) > 0, archiver);
    t.is(failed, 0, archiver);
  },
);
