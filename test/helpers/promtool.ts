/**
 * The Prometheus rules, their promtool unit tests and the Grafana dashboard, without the chart:
 * a renderer for the rules' placeholders, promtool runs, a PromQL metric-name extractor, and the
 * inventory of every metric the rules and the dashboard may use, with where it comes from.
 */
import { execFile } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';

/** The chart under test; SECRETID_CHART_DIR points at a modified copy (to see a check fail). */
export { chartDirectory } from './helm.ts';

import { chartDirectory } from './helm.ts';
export const prometheusDirectory = join(chartDirectory, 'files/prometheus');
export const rulesDirectory = join(prometheusDirectory, 'rules');
export const unitTestsDirectory = join(prometheusDirectory, 'tests');
export const testValuesFile = join(prometheusDirectory, 'test-values.yaml');
export const dashboardFile = join(chartDirectory, 'files/grafana/secretid-dashboard.json');

/** The only template actions the rules may hold: values under .Values.monitoring. */
export const placeholderPaths = [
  'slo.availabilityObjective',
  'slo.latencyObjective',
  'slo.latencyThresholdSeconds',
  'slo.minRequests',
  'replicasBelowThreshold',
  'backup.graceSeconds',
  'backup.walArchiveMaxDelaySeconds',
  'connectionsWarningRatio',
  'volumeFreeWarningRatio',
] as const;

export const placeholder = (path: string) => `{{ .Values.monitoring.${path} }}`;

const valueAt = (tree: unknown, path: string): unknown =>
  path
    .split('.')
    .reduce<unknown>(
      (node, key) =>
        node !== null && typeof node === 'object'
          ? (node as Record<string, unknown>)[key]
          : undefined,
      tree,
    );

/**
 * A number the way Helm prints a value: values are float64 there and `{{ }}` formats them with
 * Go's %v, which switches to exponent form from 1e6 up (and below 1e-4), as 1e+06. Such a value
 * would break a `for:` duration or a comparison silently, so it is refused here.
 */
export const helmNumber = (value: number) => {
  const exponent = value === 0 ? 0 : Math.floor(Math.log10(Math.abs(value)));
  if (!Number.isFinite(value) || exponent < -4 || exponent >= 6) {
    throw new Error(`${value}: Helm would print this value in exponent form`);
  }
  return String(value);
};

/** The monitoring.* values the rules are rendered with outside the chart. */
export const loadTestValues = (): Record<string, unknown> =>
  parse(readFileSync(testValuesFile, 'utf8')) as Record<string, unknown>;

/**
 * Substitutes exactly the known placeholders with monitoring.* values, as Helm's tpl would, and
 * throws if any other template action (or a stray `{{`/`}}`) is left.
 */
export const renderRules = (text: string, values: Record<string, unknown> = loadTestValues()) => {
  let rendered = text;
  for (const path of placeholderPaths) {
    const value = valueAt(values, `monitoring.${path}`);
    if (typeof value !== 'number') throw new Error(`monitoring.${path} is not a number: ${value}`);
    rendered = rendered.replaceAll(placeholder(path), helmNumber(value));
  }
  const leftover = rendered.split('\n').findIndex((line) => /\{\{|\}\}/.test(line));
  if (leftover >= 0) {
    throw new Error(
      `line ${leftover + 1} holds a template action that is not a known placeholder: ${rendered.split('\n')[leftover]?.trim()}`,
    );
  }
  return rendered;
};

/** The rule files of the chart (files/prometheus/rules/*.yml), as name -> source text. */
export const ruleSources = () =>
  new Map(
    readdirSync(rulesDirectory)
      .filter((file) => file.endsWith('.yml'))
      .sort()
      .map((file) => [file, readFileSync(join(rulesDirectory, file), 'utf8')] as const),
  );

/** The unit-test files (files/prometheus/tests/*.yml), as name -> source text. */
export const unitTestSources = () =>
  new Map(
    readdirSync(unitTestsDirectory)
      .filter((file) => file.endsWith('.yml'))
      .sort()
      .map((file) => [file, readFileSync(join(unitTestsDirectory, file), 'utf8')] as const),
  );

/**
 * Writes the rendered rules to <tmp>/rules and copies the unit tests to <tmp>/tests, the layout
 * the tests' `rule_files: [../rules/...]` expect.
 */
export const prepareWorkspace = () => {
  const directory = mkdtempSync(join(tmpdir(), 'secretid-promtool-'));
  mkdirSync(join(directory, 'rules'));
  const ruleFiles: string[] = [];
  for (const [file, text] of ruleSources()) {
    const path = join(directory, 'rules', file);
    writeFileSync(path, renderRules(text));
    ruleFiles.push(path);
  }
  cpSync(unitTestsDirectory, join(directory, 'tests'), { recursive: true });
  const testFiles = [...unitTestSources().keys()].map((file) => join(directory, 'tests', file));
  return { directory, ruleFiles, testFiles };
};

/**
 * Runs promtool (Debian package "prometheus"; PROMTOOL overrides the path) and resolves with its
 * exit status and output; rejects only when it cannot start.
 */
export const promtool = (args: string[]) =>
  new Promise<{ status: number; output: string }>((resolve, reject) => {
    execFile(
      process.env.PROMTOOL ?? 'promtool',
      args,
      { encoding: 'utf8', timeout: 110_000 },
      (error, stdout, stderr) => {
        const code = (error as { code?: unknown } | null)?.code;
        if (typeof code === 'string') {
          reject(
            new Error(`promtool could not run (${code}): install the Debian package "prometheus"`),
          );
          return;
        }
        resolve({
          status: typeof code === 'number' ? code : error ? 1 : 0,
          output: `${stdout}${stderr}`,
        });
      },
    );
  });

// ---------------------------------------------------------------------------------------------
// Rule and unit-test files, as parsed YAML.

export interface Rule {
  record?: string;
  alert?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface RuleGroup {
  name: string;
  rules: Rule[];
}

/** Every rule of the rendered rule files, with its group's name. */
export const loadRules = () =>
  [...ruleSources().values()].flatMap((text) =>
    (parse(renderRules(text)) as { groups: RuleGroup[] }).groups.flatMap((group) =>
      group.rules.map((rule) => ({ group: group.name, ...rule })),
    ),
  );

export interface AlertTest {
  eval_time: string;
  alertname: string;
  exp_alerts?: { exp_labels?: Record<string, string>; exp_annotations?: Record<string, string> }[];
}

/** One test group of a unit-test file; promtool spells the lists in the singular. */
export interface UnitTestGroup {
  name?: string;
  interval?: string;
  input_series?: { series: string; values: string }[];
  alert_rule_test?: AlertTest[];
  promql_expr_test?: { expr: string; eval_time: string; exp_samples?: unknown[] }[];
}

export interface UnitTestFile {
  rule_files: string[];
  evaluation_interval?: string;
  tests: UnitTestGroup[];
}

export const loadUnitTests = () =>
  [...unitTestSources()].map(([file, text]) => ({ file, ...(parse(text) as UnitTestFile) }));

/** A Prometheus duration ("1h30m", "93600s") in seconds. */
export const seconds = (duration: string) => {
  const units: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86_400, w: 604_800 };
  const parts = [...duration.matchAll(/(\d+)(ms|s|m|h|d|w)/g)];
  if (parts.length === 0 || parts.map((part) => part[0]).join('') !== duration) {
    throw new Error(`not a duration: ${duration}`);
  }
  return parts.reduce(
    (sum, [, amount, unit]) => sum + Number(amount) * (units[unit ?? 's'] ?? 0),
    0,
  );
};

// ---------------------------------------------------------------------------------------------
// Metric names in PromQL.

/** Words of PromQL that look like identifiers but are no metric. */
const promqlWords = new Set([
  'and',
  'or',
  'unless',
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'offset',
  'bool',
  'inf',
  'nan',
  'atan2',
]);

/**
 * The metric (or recorded series) names a PromQL expression selects: identifiers outside strings,
 * label matchers, ranges and grouping clauses that are neither a keyword nor a function or
 * aggregation (an identifier followed by "("). Grafana's $variables are never names.
 */
export const metricNamesIn = (expression: string) => {
  const text = expression
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/gi, ' ');
  const names = new Set<string>();
  for (const match of text.matchAll(/[A-Za-z_:][\w:]*/g)) {
    const name = match[0];
    const before = text[match.index - 1] ?? ' ';
    if (/[\w.$]/.test(before)) continue; // inside a number, a duration or a $variable
    if (promqlWords.has(name.toLowerCase())) continue;
    if (
      text
        .slice(match.index + name.length)
        .trimStart()
        .startsWith('(')
    )
      continue;
    names.add(name);
  }
  return names;
};

// ---------------------------------------------------------------------------------------------
// Where each metric comes from.

export type Exporter =
  | 'secretid function'
  | 'prometheus'
  | 'traefik'
  | 'kube-state-metrics'
  | 'kubelet'
  | 'knative activator and queue-proxy'
  | 'postgres-exporter'
  | 'blackbox-exporter';

export interface MetricSource {
  exporter: Exporter;
  /** Scrape job (chart/files/prometheus/prometheus.yml) the series arrive with. */
  job: string;
  /** The component and version the name is taken from. */
  source: string;
  /** Functions only: the bundles that export it; a test scrapes them to prove it. */
  services?: readonly ('api' | 'web')[];
}

const promClient = 'prom-client 15.1.3';
const both = ['api', 'web'] as const;
const red = (name: string): [string, MetricSource] => [
  name,
  {
    exporter: 'secretid function',
    job: 'secretid-functions',
    source: `functions/lib/src/metrics.ts (${promClient})`,
    services: both,
  },
];
const nodeDefault = (name: string): [string, MetricSource] => [
  name,
  {
    exporter: 'secretid function',
    job: 'secretid-functions',
    source: `${promClient} collectDefaultMetrics`,
    services: both,
  },
];
const catalog = (name: string): [string, MetricSource] => [
  name,
  {
    exporter: 'secretid function',
    job: 'secretid-functions',
    source: `functions/api/src/catalog-store.ts (${promClient})`,
    services: ['api'],
  },
];
const third = (exporter: Exporter, job: string, source: string) => (name: string) =>
  [name, { exporter, job, source }] as [string, MetricSource];
const traefik = third('traefik', 'traefik', 'Traefik v3 Prometheus metrics (documented)');
const ksm = third(
  'kube-state-metrics',
  'kube-state-metrics',
  'kube-state-metrics v2.13.0 (the chart pins it; documented metrics)',
);
const kubelet = third('kubelet', 'kubelet', 'kubelet /metrics, Kubernetes 1.2x+ (documented)');
const knative = third(
  'knative activator and queue-proxy',
  'knative-activator and knative-queue-proxy',
  'Knative Serving 1.19+ OpenTelemetry (otelhttp) server metrics, config-observability request-metrics-protocol prometheus; scraped on the test cluster at the knative/platform/versions.env pin',
);
const postgres = third(
  'postgres-exporter',
  'postgres-exporter',
  'postgres_exporter v0.15 (built-in pg_stat_database, pg_settings, pg_stat_archiver maps)',
);

/** Every metric the rules and the dashboard may use: metric name -> where it comes from. */
export const metricInventory: ReadonlyMap<string, MetricSource> = new Map<string, MetricSource>([
  red('http_requests_total'),
  red('http_request_duration_seconds_bucket'),
  red('http_request_duration_seconds_sum'),
  red('http_request_duration_seconds_count'),
  catalog('secretid_names_catalog_age_seconds'),
  catalog('secretid_names_catalog_max_staleness_seconds'),
  catalog('secretid_names_refresh_failures_total'),
  nodeDefault('process_cpu_seconds_total'),
  nodeDefault('process_resident_memory_bytes'),
  nodeDefault('nodejs_eventloop_lag_seconds'),
  [
    'up',
    {
      exporter: 'prometheus',
      job: 'every job',
      source: 'Prometheus 2.x: written by the server for each scrape target',
    },
  ],
  [
    'prometheus_target_scrape_pool_targets',
    {
      exporter: 'prometheus',
      job: 'prometheus',
      source:
        'Prometheus 2.x: its own /metrics, scraped by the prometheus job (targets per scrape pool)',
    },
  ],
  ...[
    'prometheus_tsdb_storage_blocks_bytes',
    'prometheus_tsdb_wal_storage_size_bytes',
    'prometheus_tsdb_head_chunks_storage_size_bytes',
    'prometheus_tsdb_retention_limit_bytes',
    'prometheus_tsdb_size_retentions_total',
  ].map(
    (name) =>
      [
        name,
        {
          exporter: 'prometheus',
          job: 'prometheus',
          source:
            "Prometheus 2.x: its own /metrics, scraped by the prometheus job (its TSDB's sizes)",
        },
      ] as const,
  ),
  ...['probe_success', 'probe_duration_seconds'].map(
    (name) =>
      [
        name,
        {
          exporter: 'blackbox-exporter',
          job: 'secretid-probe',
          source: "blackbox_exporter v0.26.0 (the chart's pin): one probe per scrape, http prober",
        },
      ] as const,
  ),
  traefik('traefik_service_requests_total'),
  traefik('traefik_service_request_duration_seconds_bucket'),
  traefik('traefik_service_request_duration_seconds_sum'),
  traefik('traefik_service_request_duration_seconds_count'),
  traefik('traefik_entrypoint_requests_total'),
  traefik('traefik_entrypoint_request_duration_seconds_bucket'),
  traefik('traefik_tls_certs_not_after'),
  ksm('kube_deployment_spec_replicas'),
  ksm('kube_deployment_status_replicas_available'),
  ksm('kube_statefulset_replicas'),
  ksm('kube_statefulset_status_replicas_ready'),
  ksm('kube_pod_container_status_waiting_reason'),
  ksm('kube_pod_container_status_restarts_total'),
  ksm('kube_pod_init_container_status_waiting_reason'),
  ksm('kube_pod_init_container_status_restarts_total'),
  ksm('kube_cronjob_info'),
  ksm('kube_persistentvolumeclaim_info'),
  ksm('kube_cronjob_status_last_successful_time'),
  ksm('kube_cronjob_next_schedule_time'),
  ksm('kube_cronjob_status_last_schedule_time'),
  ksm('kube_job_status_failed'),
  ksm('kube_job_failed'),
  ksm('kube_node_status_condition'),
  ksm('kube_node_status_allocatable'),
  ksm('kube_persistentvolumeclaim_resource_requests_storage_bytes'),
  ksm('kube_persistentvolume_capacity_bytes'),
  kubelet('kubelet_volume_stats_available_bytes'),
  kubelet('kubelet_volume_stats_capacity_bytes'),
  knative('http_server_request_duration_seconds_count'),
  knative('http_server_request_duration_seconds_bucket'),
  postgres('pg_up'),
  postgres('pg_stat_database_numbackends'),
  postgres('pg_settings_max_connections'),
  postgres('pg_stat_archiver_archived_count'),
  postgres('pg_stat_archiver_failed_count'),
  [
    'pg_wal_archive_ready_segments',
    {
      exporter: 'postgres-exporter',
      job: 'postgres-exporter',
      source:
        "the chart's exporter query, chart/files/postgres-exporter/queries.yaml (pg_ls_archive_statusdir)",
    },
  ],
  [
    'pg_wal_archive_oldest_ready_age_seconds',
    {
      exporter: 'postgres-exporter',
      job: 'postgres-exporter',
      source:
        "the chart's exporter query, chart/files/postgres-exporter/queries.yaml (pg_ls_archive_statusdir)",
    },
  ],
]);

/** Metric names in a scrape (Prometheus text exposition format). */
export const exposedMetricNames = (text: string) =>
  new Set(
    text
      .split('\n')
      .filter((line) => line !== '' && !line.startsWith('#'))
      .map((line) => line.split(/[{ ]/)[0] as string),
  );

// ---------------------------------------------------------------------------------------------
// The Grafana dashboard.

export interface Panel {
  id?: number;
  title?: string;
  type?: string;
  datasource?: { type?: string; uid?: string };
  targets?: { expr?: string; refId?: string; legendFormat?: string }[];
  panels?: Panel[];
  fieldConfig?: {
    defaults?: {
      unit?: string;
      thresholds?: { steps: { color: string; value: number | null }[] };
      mappings?: {
        type: string;
        options: { match?: string; result: { text?: string; color?: string } };
      }[];
    };
    overrides?: {
      matcher: { id: string; options: string };
      properties: { id: string; value: unknown }[];
    }[];
  };
}

/** The unit a panel shows a query's values in: its override by query (refId), else the panel's. */
export const targetUnit = (panel: Panel, refId: string | undefined) => {
  const override = panel.fieldConfig?.overrides?.find(
    ({ matcher }) => matcher.id === 'byFrameRefID' && matcher.options === refId,
  );
  const unit = override?.properties.find(({ id }) => id === 'unit')?.value;
  return typeof unit === 'string' ? unit : panel.fieldConfig?.defaults?.unit;
};

/**
 * The unit a query's values are in, read from the names of what it selects (the conventions of
 * Prometheus's metric names and of the rules' recordings), or undefined when the names do not
 * say: a burn rate is a plain factor, a ratio a share, _bytes bytes, _seconds (not CPU seconds
 * or a counter of them) seconds, a rate of requests requests per second, another rate counts
 * per second, a counter read raw a count.
 */
export const expressionUnit = (expr: string) => {
  if (/burn_rate/.test(expr)) return 'none';
  if (/[:_]ratio(_|\b)/.test(expr)) return 'percentunit';
  if (/_bytes\b|_bytes:/.test(expr)) return 'bytes';
  if (/cpu_seconds/.test(expr)) return 'none';
  if (/seconds/.test(expr) && !/_total\b/.test(expr)) return 's';
  if (/requests/.test(expr) && /rate/.test(expr)) return 'reqps';
  if (/:rate5m\b/.test(expr)) return 'cps';
  if (/_count\b/.test(expr) && !/\b(rate|increase)\(/.test(expr)) return 'short';
  return undefined;
};

export interface Dashboard {
  schemaVersion: number;
  title: string;
  uid: string;
  panels: Panel[];
  templating: { list: { name: string; type: string; query?: unknown; datasource?: unknown }[] };
}

export const loadDashboard = () => JSON.parse(readFileSync(dashboardFile, 'utf8')) as Dashboard;

/** Every panel, rows' nested panels included. */
export const allPanels = (panels: Panel[]): Panel[] =>
  panels.flatMap((panel) => [panel, ...allPanels(panel.panels ?? [])]);

/** The PromQL of a templating variable's query (label_values(expr, label) or query_result(expr)). */
export const variableExpression = (query: unknown) => {
  const text = typeof query === 'string' ? query : ((query as { query?: string })?.query ?? '');
  const labelValues = /^label_values\((.*),\s*[A-Za-z_]\w*\)$/.exec(text.trim());
  if (labelValues) return labelValues[1] as string;
  const queryResult = /^query_result\((.*)\)$/.exec(text.trim());
  return queryResult ? (queryResult[1] as string) : '';
};
