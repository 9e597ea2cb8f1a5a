/**
 * The chart's backups on the test cluster: a Job made from each backup CronJob (as
 * docs/disaster-recovery.md does it) succeeds, on PostgreSQL's node since the backup volume is
 * ReadWriteOnce there, and writes a checksummed dump and a base backup; WAL segments reach the
 * archive, which records the database system it belongs to. Then the point-in-time recovery of
 * docs/disaster-recovery.md, its commands run as written: a row written before the chosen
 * moment comes back, one written after it does not.
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
import { runBlock, shellBlocks } from './helpers/docs.ts';

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

/** Waits until the Job completes or fails; returns which. */
const jobOutcome = (job: string) =>
  eventually(
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

const runJobFrom = async (cronJob: string, job: string) => {
  kubectlResult(['-n', namespace, 'delete', 'job', job, '--ignore-not-found', '--wait']);
  kubectl(['-n', namespace, 'create', 'job', `--from=cronjob/${cronJob}`, job]);
  const outcome = await jobOutcome(job);
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

/** The moment docs/disaster-recovery.md's commands recover to, as they write it. */
const documentedTarget = '2026-11-24T21:14:00Z';

test.serial(
  "docs/disaster-recovery.md's point-in-time recovery, run as written: the row before the target is back, the row after it is not (cluster)",
  async (t) => {
    const sql = (text: string) => {
      const result = psql(namespace, postgresPod, text);
      if (result.status !== 0) throw new Error(`psql: ${result.stderr}`);
      return result.stdout.trim();
    };
    const run = `run ${Date.now()}`;
    const timelineBefore = Number(sql('SELECT timeline_id FROM pg_control_checkpoint()'));
    sql(
      `CREATE TABLE IF NOT EXISTS e2e_pitr (note text, at timestamptz DEFAULT clock_timestamp()); INSERT INTO e2e_pitr (note) VALUES ('before, ${run}')`,
    );
    await new Promise((resolve) => setTimeout(resolve, 1500));
    // The target in the server's clock, between the two commits; the second a second later.
    const target = sql(
      `SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`,
    );
    await new Promise((resolve) => setTimeout(resolve, 1500));
    sql(`INSERT INTO e2e_pitr (note) VALUES ('after, ${run}')`);

    // "Before you start", step 3: make sure the moment is archived.
    const archiveStep = shellBlocks('docs/disaster-recovery.md', '## Before you start').find(
      (block) => block.includes('pg_switch_wal'),
    );
    t.truthy(archiveStep, 'the step that archives the moment');
    const archived = runBlock(archiveStep as string);
    t.is(archived.status, 0, archived.output);
    await eventually('the WAL after the target to be archived', () =>
      sql(`SELECT last_archived_time > '${target}'::timestamptz FROM pg_stat_archiver`) === 't'
        ? true
        : undefined,
    );

    const steps = shellBlocks('docs/disaster-recovery.md', '### In Kubernetes');
    t.true(
      steps.some((step) => step.includes(documentedTarget)),
      `a step names the target time ${documentedTarget}`,
    );
    const started = Date.now();
    for (const [index, step] of steps.entries()) {
      const ran = runBlock(step.replaceAll(documentedTarget, target));
      t.log(
        `step ${index + 1}: exit ${ran.status}\n${ran.output.trim().split('\n').slice(-12).join('\n')}`,
      );
      if (ran.status !== 0) return t.fail(`step ${index + 1} failed:\n${step}\n${ran.output}`);
    }
    t.log(`the runbook's commands took ${((Date.now() - started) / 1000).toFixed(1)} s`);

    t.is(
      sql(`SELECT string_agg(note, ';' ORDER BY at) FROM e2e_pitr WHERE note LIKE '%, ${run}'`),
      `before, ${run}`,
    );
    t.is(sql('SELECT pg_is_in_recovery()'), 'f');
    t.is(Number(sql('SELECT timeline_id FROM pg_control_checkpoint()')), timelineBefore + 1);
    t.is(sql('SELECT count(*) FROM first_names'), '1000');
    // Step 5 starts a base backup on the new timeline: it must succeed like any other.
    const outcome = await jobOutcome(`${release}-basebackup-after-pitr`);
    t.is(
      outcome,
      'Complete',
      kubectlResult(['-n', namespace, 'logs', `job/${release}-basebackup-after-pitr`]).stdout,
    );
  },
);
