/**
 * A real scrape: the bundled functions under bounded traffic, scraped by Debian's Prometheus
 * with the chart's rendered configuration (global settings, rule files, the functions' job with
 * its Kubernetes discovery replaced by the two local processes), then every recording rule that
 * is built only from the functions' own metrics must return series through the HTTP API.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { parse, stringify } from 'yaml';
import { freePort } from './helpers/free-port.ts';
import { renderChart } from './helpers/helm.ts';
import { createNamesDatabase } from './helpers/names-database.ts';
import { startPostgres, type TestPostgres } from './helpers/postgres.ts';
import { metricInventory, metricNamesIn } from './helpers/promtool.ts';
import { getThroughEdge, type Stack, startStack } from './helpers/stack.ts';

// biome-ignore lint/suspicious/noExplicitAny: configuration and API answers are plain JSON/YAML
type Json = any;

/** Metrics the functions export themselves, from the shared inventory (histogram series too). */
const functionMetrics = new Set(
  [...metricInventory]
    .filter(([, source]) => source.exporter === 'secretid function')
    .flatMap(([name]) => [name, `${name}_bucket`, `${name}_sum`, `${name}_count`]),
);

const prometheusBinary = process.env.PROMETHEUS_BIN ?? '/usr/bin/prometheus';
const rendered = renderChart({ release: 'secretid', namespace: 'default' });
const configMap = rendered.find(
  (object) => object.kind === 'ConfigMap' && object.metadata.name === 'secretid-prometheus',
) as Json;

let server: TestPostgres;
let stack: Stack;
let directory: string;
let prometheus: ReturnType<typeof spawn> | undefined;
let prometheusUrl: string;

/** Recording rules whose inputs are, transitively, only the functions' metrics. */
const functionRecordingRules = () => {
  const rules: { record: string; expr: string }[] = [];
  for (const [key, text] of Object.entries(configMap.data as Record<string, string>)) {
    if (key === 'prometheus.yml') continue;
    for (const group of parse(text).groups ?? []) {
      for (const rule of group.rules ?? []) if (rule.record) rules.push(rule);
    }
  }
  const fromFunctions = new Set<string>();
  let grew = true;
  while (grew) {
    grew = false;
    for (const rule of rules) {
      if (fromFunctions.has(rule.record)) continue;
      const inputs = [...metricNamesIn(rule.expr)];
      if (
        inputs.length > 0 &&
        inputs.every((name) => functionMetrics.has(name) || fromFunctions.has(name))
      ) {
        fromFunctions.add(rule.record);
        grew = true;
      }
    }
  }
  return [...fromFunctions];
};

const query = async (expression: string) => {
  const response = await fetch(
    `${prometheusUrl}/api/v1/query?query=${encodeURIComponent(expression)}`,
  );
  const body = await response.json();
  if (body.status !== 'success') throw new Error(`${expression}: ${JSON.stringify(body)}`);
  return body.data.result as Json[];
};

test.before(async () => {
  if (!configMap) throw new Error('the chart rendered no secretid-prometheus ConfigMap');
  server = await startPostgres();
  const { readerUrl } = await createNamesDatabase(server);
  stack = await startStack({ databaseUrl: readerUrl });
  directory = mkdtempSync(join(tmpdir(), 'secretid-prometheus-'));
  mkdirSync(join(directory, 'rules'));
  mkdirSync(join(directory, 'data'));
  for (const [key, text] of Object.entries(configMap.data as Record<string, string>)) {
    if (key !== 'prometheus.yml') writeFileSync(join(directory, 'rules', key), text);
  }
  const config = parse(configMap.data['prometheus.yml']);
  const functionsJob = config.scrape_configs.find(
    (job: Json) => job.job_name === 'secretid-functions',
  );
  if (!functionsJob) throw new Error('the chart has no secretid-functions scrape job');
  // Derived from the chart: same job name and path; discovery replaced by the local processes,
  // and 1 s intervals so the test takes seconds, not minutes.
  const local = {
    global: { ...config.global, scrape_interval: '1s', evaluation_interval: '1s' },
    rule_files: [join(directory, 'rules', '*.yml')],
    scrape_configs: [
      {
        job_name: functionsJob.job_name,
        metrics_path: functionsJob.metrics_path ?? '/metrics',
        static_configs: [
          {
            targets: [`127.0.0.1:${stack.api.port}`],
            labels: { namespace: 'default', pod: 'api-local' },
          },
          {
            targets: [`127.0.0.1:${stack.web.port}`],
            labels: { namespace: 'default', pod: 'web-local' },
          },
        ],
      },
    ],
  };
  writeFileSync(join(directory, 'prometheus.yml'), stringify(local));
  const check = spawnSync('promtool', ['check', 'config', join(directory, 'prometheus.yml')], {
    encoding: 'utf8',
  });
  if (check.status !== 0) throw new Error(`promtool check config: ${check.stdout}${check.stderr}`);
  const port = await freePort();
  prometheusUrl = `http://127.0.0.1:${port}`;
  prometheus = spawn(
    prometheusBinary,
    [
      `--config.file=${join(directory, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(directory, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
    ],
    { stdio: 'ignore' },
  );
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      if ((await fetch(`${prometheusUrl}/-/ready`)).ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error('Prometheus did not become ready in 20 s');
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
});

test.after.always(async () => {
  prometheus?.kill('SIGTERM');
  await stack?.stop();
  server?.destroy();
  if (directory) rmSync(directory, { recursive: true, force: true });
});

test('after bounded traffic, every recording rule built on the functions returns series', async (t) => {
  const rules = functionRecordingRules();
  t.true(rules.length >= 3, `only ${rules.length} recording rules read the functions' metrics`);
  // Bounded traffic: 300 API calls, 30 pages, a few 400s and 404s, over about three seconds.
  const edge = stack.edgeUrl;
  for (let round = 0; round < 3; round++) {
    await Promise.all([
      ...Array.from({ length: 100 }, () =>
        getThroughEdge(edge, 'api.secretid', '/randomName').then((r) => r.text()),
      ),
      ...Array.from({ length: 10 }, () =>
        getThroughEdge(edge, 'web.secretid', '/').then((r) => r.text()),
      ),
      getThroughEdge(edge, 'api.secretid', '/randomName?count=500').then((r) => r.text()),
      getThroughEdge(edge, 'api.secretid', '/no/such/route').then((r) => r.text()),
    ]);
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
  const missing = new Set(rules);
  const deadline = Date.now() + 20_000;
  while (missing.size > 0 && Date.now() < deadline) {
    for (const rule of [...missing]) {
      if ((await query(rule)).length > 0) missing.delete(rule);
    }
    if (missing.size > 0) await new Promise((resolve) => setTimeout(resolve, 1000));
  }
  t.deepEqual([...missing], [], 'recording rules with no series');
  const up = await query('up{job="secretid-functions"}');
  t.is(up.length, 2);
  t.true(up.every((sample: Json) => sample.value[1] === '1'));
  const requests = await query(
    'sum(http_requests_total{service="api",route="/randomName",status="200"})',
  );
  t.true(Number(requests[0]?.value[1]) >= 300);
  t.log(`recording rules checked: ${rules.join(', ')}`);
});
