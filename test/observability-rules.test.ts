/**
 * The Prometheus rules and the Grafana dashboard: rendered like Helm's tpl renders them, checked
 * and unit-tested with promtool, every alert tested and documented, and every metric they use
 * accounted for: by a real scrape of the functions' bundles, or by the exporter that documents it.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { parse, stringify } from 'yaml';
import { durationBuckets } from '../functions/lib/src/metrics.ts';
import { bundles } from '../scripts/build.ts';
import { spawnFunction, waitUntilReady } from '../scripts/processes.ts';
import { freePort } from './helpers/free-port.ts';
import { renderChart } from './helpers/helm.ts';
import {
  allPanels,
  chartDirectory,
  exposedMetricNames,
  expressionUnit,
  loadDashboard,
  loadRules,
  loadTestValues,
  loadUnitTests,
  metricInventory,
  metricNamesIn,
  placeholder,
  placeholderPaths,
  prepareWorkspace,
  promtool,
  renderRules,
  ruleSources,
  seconds,
  targetUnit,
  variableExpression,
} from './helpers/promtool.ts';

const rules = loadRules();
const alerts = rules.filter((rule) => rule.alert !== undefined);
const recorded = new Set(rules.flatMap((rule) => (rule.record ? [rule.record] : [])));
const workspace = prepareWorkspace();
test.after.always(() => rmSync(workspace.directory, { recursive: true, force: true }));

test('the rules hold no template action but the monitoring placeholders, all of them used', (t) => {
  const sources = [...ruleSources().values()].join('\n');
  for (const path of placeholderPaths) {
    t.true(sources.includes(placeholder(path)), `${placeholder(path)} is never used`);
  }
  t.throws(() => renderRules('expr: up > {{ .Values.monitoring.unknown }}'), {
    message: /not a known placeholder/,
  });
  t.throws(() => renderRules('expr: up > {{ .Values.monitoring.connectionsWarningRatio}}'), {
    message: /not a known placeholder/,
  });
  // Helm prints 1000000 as 1e+06, which would make `for: 1e+06s` invalid.
  const values = loadTestValues() as { monitoring: { backup: { graceSeconds: number } } };
  values.monitoring.backup.graceSeconds = 1_000_000;
  t.throws(() => renderRules(sources, values), { message: /exponent form/ });
});

test('test-values.yaml holds the chart defaults of every placeholder', (t) => {
  const chartValues = parse(readFileSync(join(chartDirectory, 'values.yaml'), 'utf8'));
  const testValues = loadTestValues();
  const at = (tree: unknown, path: string) =>
    path.split('.').reduce<unknown>((node, key) => (node as Record<string, unknown>)?.[key], tree);
  for (const path of placeholderPaths) {
    t.is(at(testValues, `monitoring.${path}`), at(chartValues, `monitoring.${path}`), path);
  }
});

test('the latency threshold is a bucket bound of the functions histogram', (t) => {
  const threshold = (
    loadTestValues() as { monitoring: { slo: { latencyThresholdSeconds: number } } }
  ).monitoring.slo.latencyThresholdSeconds;
  t.true(durationBuckets.includes(threshold), `${threshold} is not one of ${durationBuckets}`);
});

test('Helm renders the rules exactly as the test renderer does', (t) => {
  const configMaps = renderChart().filter((object) => object.kind === 'ConfigMap');
  for (const [file, text] of ruleSources()) {
    const rendered = configMaps
      .map((object) => (object.data as Record<string, string> | undefined)?.[file])
      .find((data) => data !== undefined);
    t.truthy(rendered, `no ConfigMap of the chart holds ${file}`);
    // The ConfigMap's block scalar ends the file with exactly one newline.
    t.is(rendered?.trimEnd(), renderRules(text).trimEnd(), file);
  }
});

test('promtool check rules passes', async (t) => {
  const result = await promtool(['check', 'rules', ...workspace.ruleFiles]);
  t.is(result.status, 0, result.output);
  t.regex(result.output, /SUCCESS: \d+ rules found/);
});

for (const file of workspace.testFiles) {
  test(`promtool test rules passes: ${file.split('/').at(-1)}`, async (t) => {
    const result = await promtool(['test', 'rules', file]);
    t.is(result.status, 0, result.output);
    t.regex(result.output, /SUCCESS/);
  });
}

/** The one alert meant to fire all the time: the alerting path's heartbeat. */
const watchdog = 'Watchdog';
const ordinaryAlerts = () => alerts.filter((alert) => alert.alert !== watchdog);

test('every alert has a unit test that sees it pending, then firing once `for` has passed', (t) => {
  const unitTests = loadUnitTests();
  for (const alert of ordinaryAlerts()) {
    const name = alert.alert as string;
    const forSeconds = alert.for ? seconds(alert.for) : 0;
    const proven = unitTests.some((file) => {
      const step = seconds(file.evaluation_interval ?? '1m');
      return file.tests.some((group) => {
        const cases = (group.alert_rule_test ?? []).filter((entry) => entry.alertname === name);
        const quiet = cases.filter((entry) => (entry.exp_alerts ?? []).length === 0);
        const firing = cases.filter((entry) => (entry.exp_alerts ?? []).length > 0);
        return firing.some((fire) =>
          quiet.some((silent) => {
            const gap = seconds(fire.eval_time) - seconds(silent.eval_time);
            return gap > 0 && gap <= Math.max(forSeconds, step);
          }),
        );
      });
    });
    t.true(proven, `${name}: no test expects it silent within its \`for\` before it fires`);
  }
});

test('every alert has a severity, a summary and a one-line runbook', (t) => {
  t.true(alerts.length > 0);
  const names = alerts.map((alert) => alert.alert);
  t.deepEqual(names, [...new Set(names)], 'alert names are unique');
  for (const alert of ordinaryAlerts()) {
    t.regex(alert.labels?.severity ?? '', /^(critical|warning)$/, `${alert.alert}: severity`);
    t.true((alert.annotations?.summary ?? '').length > 10, `${alert.alert}: summary`);
    const runbook = alert.annotations?.runbook ?? '';
    t.true(runbook.length > 20 && !runbook.includes('\n'), `${alert.alert}: one-line runbook`);
    t.truthy(alert.for, `${alert.alert}: a \`for\` period, so one bad sample never pages`);
  }
});

test('the Watchdog fires always, from nothing, with severity none and no wait', (t) => {
  const alert = alerts.find((entry) => entry.alert === watchdog);
  t.is(alert?.expr?.trim(), 'vector(1)');
  t.is(alert?.labels?.severity, 'none');
  t.falsy(alert?.for);
  t.true((alert?.annotations?.runbook ?? '').length > 20);
  const proven = loadUnitTests().some((file) =>
    file.tests.some(
      (group) =>
        (group.input_series ?? []).length === 0 &&
        (group.alert_rule_test ?? []).some(
          (entry) => entry.alertname === watchdog && (entry.exp_alerts ?? []).length === 1,
        ),
    ),
  );
  t.true(proven, 'a unit test with no input series expects the Watchdog firing');
});

test('recording rules are named level:metric:operations', (t) => {
  for (const name of recorded) t.regex(name, /^[a-z_]+:[a-z0-9_]+:[a-z0-9_]+$/, name);
});

/** Names an expression selects that are neither recorded here nor in the inventory. */
const unknownNames = (expression: string) =>
  [...metricNamesIn(expression)].filter(
    (name) => !recorded.has(name) && !metricInventory.has(name),
  );

test('the metric-name extractor finds metrics and nothing else', (t) => {
  t.deepEqual(
    [
      ...metricNamesIn(
        'sum by (service, le) (rate(a_bucket{le="0.25", route!~"x|y"}[5m] offset 1h)) / on (job) group_left () max_over_time(b:c:d[$__rate_interval]) > bool 1e3 or vector(1) unless absent(up)',
      ),
    ],
    ['a_bucket', 'b:c:d', 'up'],
  );
  t.deepEqual([...metricNamesIn(`label_replace(x, "a", "\${1}xx", "b", "(.).*")`)], ['x']);
});

test('every metric the rules use is recorded by them or in the inventory', (t) => {
  for (const rule of rules) {
    t.deepEqual(unknownNames(rule.expr), [], `${rule.record ?? rule.alert}: ${rule.expr}`);
  }
});

const dashboard = loadDashboard();
const dashboardExpressions = [
  ...allPanels(dashboard.panels).flatMap((panel) =>
    (panel.targets ?? []).map((target) => ({ panel: panel.title, expr: target.expr ?? '' })),
  ),
  ...dashboard.templating.list
    .filter((variable) => variable.type === 'query')
    .map((variable) => ({ panel: `$${variable.name}`, expr: variableExpression(variable.query) })),
];

test('every metric the dashboard uses is recorded by the rules or in the inventory', (t) => {
  t.true(dashboardExpressions.length > 20);
  for (const { panel, expr } of dashboardExpressions) {
    t.true(metricNamesIn(expr).size > 0, `${panel}: no metric in ${expr}`);
    t.deepEqual(unknownNames(expr), [], `${panel}: ${expr}`);
  }
});

test('every metric of the inventory is used by the rules or the dashboard', (t) => {
  const used = new Set(
    [...rules.map((rule) => rule.expr), ...dashboardExpressions.map(({ expr }) => expr)].flatMap(
      (expr) => [...metricNamesIn(expr)],
    ),
  );
  for (const name of metricInventory.keys()) t.true(used.has(name), `${name} is never used`);
});

test(`the dashboard is a schemaVersion 39 dashboard on a \${datasource} Prometheus variable`, (t) => {
  t.is(dashboard.schemaVersion, 39);
  t.truthy(dashboard.uid);
  const datasource = dashboard.templating.list.find((variable) => variable.name === 'datasource');
  t.like(datasource, { type: 'datasource', query: 'prometheus' });
  const panels = allPanels(dashboard.panels);
  const ids = panels.map((panel) => panel.id);
  t.deepEqual(ids, [...new Set(ids)], 'panel ids are unique');
  for (const panel of panels.filter((panel) => panel.type !== 'row')) {
    t.like(panel.datasource, { type: 'prometheus', uid: `\${datasource}` }, `${panel.title}`);
    t.true((panel.targets ?? []).length > 0, `${panel.title}: no query`);
    for (const target of panel.targets ?? []) {
      t.truthy(target.expr, `${panel.title}: empty query`);
      t.truthy(target.refId, `${panel.title}: refId`);
    }
  }
});

test("each query of the dashboard is shown in its values' unit (a second unit gets its own axis)", (t) => {
  let checked = 0;
  for (const panel of allPanels(dashboard.panels)) {
    const units = new Set<string>();
    for (const target of panel.targets ?? []) {
      const shown = targetUnit(panel, target.refId);
      units.add(shown ?? '');
      const unit = expressionUnit(target.expr ?? '');
      if (unit === undefined) continue;
      checked += 1;
      t.is(shown, unit, `${panel.title} ${target.refId}: ${target.expr}`);
    }
    if (panel.type === 'timeseries' && units.size > 1) {
      // Grafana draws one axis per unit, and only where a series is put on another side.
      const right = (panel.fieldConfig?.overrides ?? []).filter(({ properties }) =>
        properties.some(({ id, value }) => id === 'custom.axisPlacement' && value === 'right'),
      );
      t.true(right.length > 0, `${panel.title}: ${[...units].join(', ')} on one axis`);
    }
  }
  t.true(checked > 60, `${checked} queries with a unit in their names`);
});

const statPanels = allPanels(dashboard.panels).filter((panel) => panel.type === 'stat');
/** Grafana colours a stat whose value is missing or NaN with its first threshold step, unless a value mapping says otherwise. */
const specialMapping = (panel: (typeof statPanels)[number], match: 'null' | 'nan') =>
  panel.fieldConfig?.defaults?.mappings?.find(
    (mapping) =>
      mapping.type === 'special' &&
      (mapping.options.match === match || mapping.options.match === 'null+nan'),
  )?.options.result;

test('no stat tile shows a healthy colour when its series are missing, nor when a ratio has no requests', (t) => {
  t.true(statPanels.length >= 10);
  for (const panel of statPanels) {
    const missing = specialMapping(panel, 'null');
    t.truthy(missing?.text, `${panel.title}: no text for a missing series`);
    t.truthy(missing?.color, `${panel.title}: no colour for a missing series`);
    t.notRegex(missing?.color ?? 'green', /green/, `${panel.title}: missing reads healthy`);
    const expr = panel.targets?.map((target) => target.expr).join(' ') ?? '';
    if (/ratio|burn_rate/.test(expr)) {
      const nan = specialMapping(panel, 'nan');
      t.truthy(nan?.text, `${panel.title}: no text for NaN`);
      t.notRegex(nan?.color ?? 'green', /green/, `${panel.title}: NaN reads healthy`);
    }
  }
});

/** Recordings of constants (the objectives): they have no source to lose. */
const constants = new Set(
  rules.flatMap((rule) =>
    rule.record && metricNamesIn(rule.expr).size === 0 ? [rule.record] : [],
  ),
);
const readsOnlyConstants = (expr: string) =>
  [...metricNamesIn(expr)].every((name) => constants.has(name));

test("stat tiles' queries return nothing when their sources are gone, so Grafana shows the missing-series mapping (promtool)", async (t) => {
  // Only an unrelated series: no exporter, Traefik, kube-state-metrics or function was scraped.
  // A query padded with "or vector(1)" would make a missing source read as healthy.
  const file = join(workspace.directory, 'tests', 'dashboard-stat-tiles.yml');
  writeFileSync(
    file,
    stringify({
      rule_files: workspace.ruleFiles.map((path) => `../rules/${path.split('/').at(-1)}`),
      evaluation_interval: '30s',
      tests: [
        {
          interval: '30s',
          input_series: [{ series: 'unrelated_metric{job="elsewhere"}', values: '1x40' }],
          promql_expr_test: statPanels.flatMap((panel) =>
            (panel.targets ?? [])
              .filter((target) => !readsOnlyConstants(target.expr ?? ''))
              .map((target) => ({ expr: target.expr, eval_time: '15m', exp_samples: [] })),
          ),
        },
      ],
    }),
  );
  const result = await promtool(['test', 'rules', file]);
  t.is(result.status, 0, result.output);
  t.regex(result.output, /SUCCESS/);
});

test('the functions export every function metric of the inventory', async (t) => {
  if (!existsSync(bundles.api.output) || !existsSync(bundles.web.output)) {
    const build = spawnSync(process.execPath, ['scripts/build.ts'], { encoding: 'utf8' });
    t.is(build.status, 0, build.stderr);
  }
  // Neither needs its backend to serve metrics: the API has no database here, web no API.
  const environments = {
    api: { DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none' },
    web: { API_URL: 'http://127.0.0.1:1' },
  } as const;
  for (const service of ['api', 'web'] as const) {
    const port = await freePort();
    const child = spawnFunction({
      name: service,
      script: bundles[service].output,
      port,
      env: environments[service],
    });
    try {
      // The readiness poll is a request too, so the request metrics have series.
      await waitUntilReady(child, `http://127.0.0.1:${port}/healthz`);
      const scrape = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      const exposed = exposedMetricNames(scrape);
      t.regex(scrape, new RegExp(`service="${service}"`));
      for (const [name, source] of metricInventory) {
        if (source.exporter !== 'secretid function') continue;
        t.is(
          exposed.has(name),
          source.services?.includes(service) ?? false,
          `${service} ${source.services?.includes(service) ? 'lacks' : 'unexpectedly exports'} ${name}`,
        );
      }
    } finally {
      await child.stop();
    }
  }
});

test('docs/observability.md names every alert and every metric of the inventory', (t) => {
  const docs = readFileSync('docs/observability.md', 'utf8');
  for (const alert of alerts) t.true(docs.includes(`${alert.alert}`), `${alert.alert}`);
  for (const name of metricInventory.keys()) t.true(docs.includes(`\`${name}\``), name);
});
