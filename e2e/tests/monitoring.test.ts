/**
 * The chart's Prometheus on the test cluster, read through the edge as an operator reads it:
 * every scrape job it is configured with finds its targets and they are up, the recording
 * rules return series computed from traffic this test sends, every rule evaluates without
 * error, and kube-state-metrics reports the chart's workloads.
 */
import { X509Certificate } from 'node:crypto';
import test from 'ava';
import { parse } from 'yaml';
import { chartValues } from '../lib/chart.ts';
import {
  alertmanagerAlerts,
  edgeCaFile,
  edgeHost,
  ensureKnativeServices,
  ensureRelease,
  eventually,
  kubectl,
  namespace,
  prometheusApi,
  promQuery,
  release,
  secretData,
  upgradeRelease,
} from './helpers/cluster.ts';
import { byStatus, edgeLoad, type Load } from './helpers/load.ts';

let caFile = '';
let loads: Load[] = [];

interface Target {
  labels: Record<string, string>;
  scrapeUrl: string;
  health: string;
  lastError: string;
}
interface RuleGroup {
  name: string;
  rules: Array<{
    type: 'recording' | 'alerting';
    name: string;
    health: string;
    lastError?: string;
  }>;
}

/** The job names of the Prometheus configuration the chart installed (its ConfigMap). */
const configuredJobs = () => {
  const config = parse(
    kubectl([
      '-n',
      namespace,
      'get',
      'configmap',
      `${release}-prometheus`,
      '-o',
      'jsonpath={.data.prometheus\\.yml}',
    ]),
  ) as { scrape_configs: Array<{ job_name: string }> };
  return config.scrape_configs.map(({ job_name }) => job_name).sort();
};

/** The release's Prometheus scrapes and evaluates every `interval` (e.g. "10s"), probes every `probe`. */
const setIntervals = (scrape: string, evaluation: string, probe: string) =>
  upgradeRelease({
    'prometheus.scrapeInterval': scrape,
    'prometheus.evaluationInterval': evaluation,
    'probe.interval': probe,
  });

test.before(() => {
  ensureRelease(release, namespace);
  ensureKnativeServices();
  caFile = edgeCaFile();
  // A rate() needs two scrapes of a counter and the rule an evaluation after them: at the
  // chart's 30 s that is about 90 s of waiting; the test scrapes and evaluates every 10 s.
  setIntervals('10s', '10s', '40s');
  // About 40 s of steady traffic to both functions, for both tests: the functions' pods (and
  // their queue-proxies) exist only while there is traffic.
  loads = [
    edgeLoad({ url: `https://${edgeHost('api')}/randomName`, caFile, count: 80, perSecond: 2 }),
    edgeLoad({ url: `https://${edgeHost('web')}/`, caFile, count: 40, perSecond: 1 }),
  ];
});

test.after.always(() => {
  const { scrapeInterval, evaluationInterval } = chartValues().prometheus as Record<string, string>;
  const { interval } = chartValues().probe as Record<string, string>;
  setIntervals(scrapeInterval as string, evaluationInterval as string, interval as string);
});

test.serial(
  'every scrape job of the chart finds its targets on this cluster and they are all up (cluster)',
  async (t) => {
    const jobs = configuredJobs();
    t.true(jobs.length >= 8, jobs.join(' '));
    const targets = await eventually(
      'every configured job to have targets, all up',
      () => {
        const active = prometheusApi<{ activeTargets: Target[] }>(
          caFile,
          '/api/v1/targets',
        ).activeTargets;
        const seen = new Set(active.map((target) => target.labels.job));
        const missing = jobs.filter((job) => !seen.has(job));
        const down = active.filter((target) => target.health !== 'up');
        if (missing.length > 0 || down.length > 0)
          throw new Error(
            `no targets for ${missing.join(', ') || '-'}; not up: ${down.map((target) => `${target.labels.job} ${target.scrapeUrl} ${target.health} ${target.lastError}`).join('; ') || '-'}`,
          );
        return active;
      },
      120_000,
    );
    for (const job of jobs)
      t.log(`${job}: ${targets.filter((target) => target.labels.job === job).length} target(s) up`);
  },
);

test.serial(
  'the recording rules return series computed from the traffic this test sends, and every rule evaluates without error (cluster)',
  async (t) => {
    const groups = ['secretid-functions', 'secretid-edge', 'secretid-knative'];
    const recorded = await eventually(
      'every recording rule of the functions, the edge and Knative to return series',
      () => {
        const loaded = prometheusApi<{ groups: RuleGroup[] }>(caFile, '/api/v1/rules').groups;
        const records = loaded
          .filter((group) => groups.includes(group.name))
          .flatMap((group) => group.rules.filter((rule) => rule.type === 'recording'))
          .map((rule) => rule.name);
        const empty = [...new Set(records)].filter(
          (record) => promQuery(caFile, record).length === 0,
        );
        if (records.length === 0 || empty.length > 0)
          throw new Error(`no series yet for ${empty.join(', ') || 'any rule'}`);
        return [...new Set(records)];
      },
      240_000,
    );
    t.log(`${recorded.length} recording rules of ${groups.join(', ')} return series`);
    const answers = (await Promise.all(loads.map((load) => load.done))).flat();
    t.deepEqual(byStatus(answers), { 200: answers.length }, 'the traffic itself succeeded');

    const apiRate = promQuery(caFile, 'service:http_requests:rate5m{service="api"}');
    t.true(Number(apiRate[0]?.value[1]) > 0, JSON.stringify(apiRate));
    const queueProxy = promQuery(
      caFile,
      `namespace_service:knative_queue_proxy_requests:rate5m{namespace="${namespace}", service="api"}`,
    );
    t.true(Number(queueProxy[0]?.value[1]) > 0, JSON.stringify(queueProxy));

    // The latency SLO at the edge: Traefik (configured as ansible's k3s_server role does) has
    // a bucket at the chart's threshold for the functions' services, so the SLI has a value.
    const threshold = String(
      (chartValues().monitoring as { slo: { latencyThresholdSeconds: number } }).slo
        .latencyThresholdSeconds,
    );
    const bucket = promQuery(
      caFile,
      `count(traefik_service_request_duration_seconds_bucket{service=~".+-functions-[0-9a-f]{20}@kubernetescrd", le="${threshold}"})`,
    );
    t.true(
      Number(bucket[0]?.value[1]) >= 1,
      `Traefik's bucket le=${threshold}: ${JSON.stringify(bucket)}`,
    );
    const latency = promQuery(caFile, 'slo:sli_error:ratio_rate5m{slo="latency"}');
    t.is(latency.length, 1, JSON.stringify(latency));
    const share = Number(latency[0]?.value[1]);
    t.true(share >= 0 && share <= 1, `latency SLI error share ${share}`);
    const p95 = promQuery(caFile, 'edge:traefik_service_request_duration_seconds:p95_rate5m');
    t.log(
      `edge latency: ${(share * 100).toFixed(2)} % slower than ${threshold} s, p95 ${(Number(p95[0]?.value[1]) * 1000).toFixed(1)} ms`,
    );

    const loaded = prometheusApi<{ groups: RuleGroup[] }>(caFile, '/api/v1/rules').groups;
    const failing = loaded.flatMap((group) =>
      group.rules
        .filter((rule) => rule.health !== 'ok')
        .map((rule) => `${group.name}/${rule.name}: ${rule.health} ${rule.lastError ?? ''}`),
    );
    t.deepEqual(failing, [], 'every rule evaluates');
  },
);

test.serial(
  'every scrape job MonitoringSourceMissing guards has a target, as Prometheus counts them (cluster)',
  (t) => {
    const pools = promQuery(
      caFile,
      'prometheus_target_scrape_pool_targets{scrape_job=~"kube-state-metrics|postgres-exporter|knative-activator|kubelet"}',
    );
    const counts: Record<string, number> = Object.fromEntries(
      pools.map((series) => [series.metric.scrape_job, Number(series.value[1])]),
    );
    t.deepEqual(Object.keys(counts).sort(), [
      'knative-activator',
      'kube-state-metrics',
      'kubelet',
      'postgres-exporter',
    ]);
    for (const [job, count] of Object.entries(counts)) t.true(count >= 1, `${job}: ${count}`);
    t.log(JSON.stringify(counts));
  },
);

test.serial(
  "postgres_exporter runs the chart's WAL archive query: the segments waiting and the oldest one's age (cluster)",
  (t) => {
    const series = (name: string) => promQuery(caFile, `${name}{job="postgres-exporter"}`);
    const ready = series('pg_wal_archive_ready_segments');
    const age = series('pg_wal_archive_oldest_ready_age_seconds');
    t.is(ready.length, 1, JSON.stringify(ready));
    t.is(age.length, 1, JSON.stringify(age));
    // The archive works here: at most the segment finished in the last moments waits.
    t.true(Number(ready[0]?.value[1]) <= 1, JSON.stringify(ready));
    t.true(Number(age[0]?.value[1]) < 600, JSON.stringify(age));
    t.log(`waiting: ${ready[0]?.value[1]} segments, oldest ${age[0]?.value[1]} s`);
  },
);

test.serial(
  "Prometheus reports its TSDB's size and the chart's retention size, which its storage alerts compare (cluster)",
  (t) => {
    const used = promQuery(caFile, 'instance:prometheus_tsdb_storage:bytes{job="prometheus"}');
    t.is(used.length, 1, JSON.stringify(used));
    t.true(Number(used[0]?.value[1]) > 0, JSON.stringify(used));
    const limit = promQuery(caFile, 'prometheus_tsdb_retention_limit_bytes{job="prometheus"}');
    // prometheus.retentionSize ("8GB") is read by Prometheus in powers of two.
    const { retentionSize } = chartValues().prometheus as { retentionSize: string };
    const size = /^(\d+)GB$/.exec(retentionSize);
    t.truthy(size, 'prometheus.retentionSize is given in GB');
    t.is(Number(limit[0]?.value[1]), Number(size?.[1]) * 2 ** 30);
    // Whether kubelet reports the claim's fill level on this storage class (hostPath does not).
    const volume = promQuery(
      caFile,
      `kubelet_volume_stats_capacity_bytes{namespace="${namespace}", persistentvolumeclaim="${release}-prometheus"}`,
    );
    t.log(
      `TSDB ${(Number(used[0]?.value[1]) / 2 ** 20).toFixed(1)} MiB of ${size?.[1]} GiB; kubelet volume stats for the claim: ${volume.length > 0 ? 'present' : 'none'}`,
    );
  },
);

test.serial(
  'the synthetic probe gets 200 from both functions through the edge, on a route of its own that the SLIs leave out (cluster)',
  async (t) => {
    const probes = await eventually(
      'probe_success 1 for api and web',
      () => {
        const series = promQuery(caFile, 'probe_success{job="secretid-probe"}');
        return series.length === 2 && series.every((entry) => entry.value[1] === '1') && series;
      },
      180_000,
    );
    t.deepEqual(probes.map((entry) => entry.metric.function).sort(), ['api', 'web']);
    // Traefik counts the probe's requests under its own IngressRoute's service; the SLIs
    // select the functions IngressRoute's services only.
    const services = (selector: string) =>
      promQuery(caFile, `sum by (service) (traefik_service_requests_total{service=~"${selector}"})`)
        .map((entry) => entry.metric.service as string)
        .sort();
    const probeServices = services(`${namespace}-${release}-probe-[0-9a-f]{20}@kubernetescrd`);
    const sliServices = services('.+-functions-[0-9a-f]{20}@kubernetescrd');
    t.is(probeServices.length, 2, JSON.stringify(probeServices));
    t.deepEqual(
      probeServices.filter((service) => sliServices.includes(service)),
      [],
    );
    const durations = promQuery(caFile, 'probe_duration_seconds{job="secretid-probe"}')
      .map((entry) => `${entry.metric.function} ${Number(entry.value[1]).toFixed(3)} s`)
      .join(', ');
    t.log(`probe services ${probeServices.join(', ')}; last probes: ${durations}`);
  },
);

test.serial("kube-state-metrics reports the chart's workloads (cluster)", (t) => {
  const value = (expr: string) => promQuery(caFile, expr).map((series) => series.value[1]);
  t.deepEqual(
    value(
      `kube_statefulset_status_replicas_ready{namespace="${namespace}", statefulset="${release}-postgres"}`,
    ),
    ['1'],
  );
  t.deepEqual(
    value(
      `kube_deployment_status_replicas_available{namespace="${namespace}", deployment="${release}-prometheus"}`,
    ),
    ['1'],
  );
  t.deepEqual(
    promQuery(caFile, `kube_cronjob_info{namespace="${namespace}"}`)
      .map((series) => series.metric.cronjob)
      .sort(),
    [`${release}-backup`, `${release}-basebackup`],
  );
  t.true(
    value(
      `kube_persistentvolumeclaim_status_phase{namespace="${namespace}", phase="Bound"}`,
    ).filter((bound) => bound === '1').length >= 3,
    'the data, backup and Prometheus claims are Bound',
  );
});

/** Whether a Unix time, read in `timeZone`, is a time a five-field cron schedule names. */
const onSchedule = (seconds: number, schedule: string, timeZone: string) => {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      minute: 'numeric',
      hour: 'numeric',
      day: 'numeric',
      month: 'numeric',
      weekday: 'short',
    })
      .formatToParts(new Date(seconds * 1000))
      .map(({ type, value }) => [type, value]),
  );
  const weekday = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'].indexOf(parts.weekday ?? '');
  const actual = [parts.minute, parts.hour, parts.day, parts.month, weekday].map(Number);
  return schedule
    .split(/\s+/)
    .every((field, index) => field === '*' || Number(field) === actual[index]);
};

test.serial(
  "backup.timeZone: kube-state-metrics' next run of each backup CronJob is the schedule's time in that zone, as the controller runs it (cluster)",
  async (t) => {
    const backup = chartValues().backup as Record<string, string>;
    const schedules = {
      [`${release}-backup`]: backup.dumpSchedule as string,
      [`${release}-basebackup`]: backup.baseBackupSchedule as string,
    };
    const setZone = (zone: string) => upgradeRelease({ 'backup.timeZone': zone });
    // Kolkata has no daylight saving time and a half-hour offset: no schedule's hour and
    // minute are the same there and in UTC.
    try {
      for (const zone of [backup.timeZone as string, 'Asia/Kolkata']) {
        if (zone !== backup.timeZone) setZone(zone);
        for (const [cronJob, schedule] of Object.entries(schedules)) {
          t.is(
            kubectl([
              '-n',
              namespace,
              'get',
              'cronjob',
              cronJob,
              '-o',
              'jsonpath={.spec.timeZone}',
            ]),
            zone,
          );
          const next = await eventually(
            `kube_cronjob_next_schedule_time of ${cronJob} on "${schedule}" in ${zone}`,
            () => {
              const series = promQuery(
                caFile,
                `kube_cronjob_next_schedule_time{namespace="${namespace}", cronjob="${cronJob}"}`,
              ).map((entry) => Number(entry.value[1]));
              return (
                series.length > 0 &&
                series.every((seconds) => onSchedule(seconds, schedule, zone)) &&
                series
              );
            },
            180_000,
          );
          t.log(
            `${cronJob} "${schedule}" in ${zone}: next ${new Date((next[0] as number) * 1000).toISOString()}`,
          );
        }
      }
      t.deepEqual(promQuery(caFile, 'ALERTS{alertname="BackupMissedSchedule"}'), []);
    } finally {
      setZone(backup.timeZone as string);
    }
  },
);

test.serial(
  "Traefik reports the end of the chart's edge certificate, which EdgeCertificateExpiresSoon watches (cluster)",
  (t) => {
    const leaf = new X509Certificate(secretData(namespace, `${release}-tls`)['tls.crt'] as string);
    const series = promQuery(caFile, 'traefik_tls_certs_not_after{job="traefik"}');
    // Traefik keeps reporting a leaf it replaced (an earlier test re-issued it): find this one
    // by its serial (Traefik writes it in decimal).
    const serial = BigInt(`0x${leaf.serialNumber}`).toString();
    const ours = series.filter((entry) => entry.metric.serial === serial);
    t.true(ours.length > 0, JSON.stringify(series.map((entry) => entry.metric)));
    for (const entry of ours) {
      t.true((entry.metric.sans ?? '').split(',').includes(edgeHost('api')));
      t.is(Number(entry.value[1]), leaf.validToDate.getTime() / 1000, JSON.stringify(entry.metric));
    }
    t.log(`the edge's leaf (${ours[0]?.metric.cn}) is valid until ${leaf.validTo}`);
  },
);

test.serial(
  "the Watchdog fires in Prometheus and arrives in the chart's Alertmanager, routed to the watchdog receiver (cluster)",
  async (t) => {
    const targets = prometheusApi<{ activeAlertmanagers: Array<{ url: string }> }>(
      caFile,
      '/api/v1/alertmanagers',
    ).activeAlertmanagers;
    t.deepEqual(
      targets.map(({ url }) => new URL(url).host),
      [`${release}-alertmanager.${namespace}.svc:9093`],
    );
    const [watchdog] = await eventually(
      'the Watchdog in Alertmanager',
      () => {
        const found = alertmanagerAlerts(caFile, 'alertname="Watchdog"');
        return found.length > 0 && found;
      },
      180_000,
    );
    t.is(watchdog?.status.state, 'active');
    t.deepEqual(
      watchdog?.receivers.map(({ name }) => name),
      ['watchdog'],
    );
  },
);

test.serial(
  'a backup Job made to fail: BackupJobFailed fires in Prometheus and arrives in Alertmanager (cluster)',
  async (t) => {
    // The dump CronJob's own Job, its command replaced by a failure; named like a scheduled
    // run (<cronjob>-<digits>), as the alert's job_name selector expects.
    const name = `${release}-backup-${String(Date.now()).slice(-8)}`;
    const job = JSON.parse(
      kubectl([
        '-n',
        namespace,
        'create',
        'job',
        `--from=cronjob/${release}-backup`,
        name,
        '--dry-run=client',
        '-o',
        'json',
      ]),
    );
    job.spec.backoffLimit = 0;
    job.spec.template.spec.containers[0].command = [
      'bash',
      '-c',
      'echo "e2e: this backup fails on purpose" >&2; exit 1',
    ];
    kubectl(['-n', namespace, 'create', '-f', '-'], JSON.stringify(job));
    const started = Date.now();
    try {
      const firing = await eventually(
        'BackupJobFailed firing in Prometheus',
        () => {
          const alerts = prometheusApi<{
            alerts: Array<{ labels: Record<string, string>; state: string }>;
          }>(caFile, '/api/v1/alerts').alerts.filter(
            (alert) =>
              alert.labels.alertname === 'BackupJobFailed' && alert.labels.job_name === name,
          );
          return alerts.some((alert) => alert.state === 'firing') && alerts;
        },
        300_000,
      );
      t.is(firing[0]?.labels.severity, 'warning');
      const [received] = await eventually(
        'BackupJobFailed in Alertmanager',
        () => {
          const found = alertmanagerAlerts(caFile, `alertname="BackupJobFailed"`).filter(
            (alert) => alert.labels.job_name === name,
          );
          return found.length > 0 && found;
        },
        120_000,
      );
      t.is(received?.status.state, 'active');
      t.deepEqual(
        received?.receivers.map(({ name: receiver }) => receiver),
        ['ticket'],
      );
      t.log(
        `Job ${name} failed; the alert reached Alertmanager ${((Date.now() - started) / 1000).toFixed(0)} s after the Job was created`,
      );
    } finally {
      kubectl(['-n', namespace, 'delete', 'job', name, '--wait=false']);
    }
  },
);
