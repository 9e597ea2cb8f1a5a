/**
 * The latency SLO counts Traefik's bucket at monitoring.slo.latencyThresholdSeconds, so every
 * place that configures Traefik must give it that bound: ansible's k3s_server role (and the test
 * cluster, which reads the same default), the HelmChartConfig of chart/README.md and the helm
 * command of docs/install.md, run through the real helm to see what `--set` makes of it.
 */
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { parse } from 'yaml';
import { durationBuckets } from '../functions/lib/src/metrics.ts';
import { runHelm } from './helpers/helm.ts';
import { bucketBounds, traefikLatencyBuckets } from './helpers/traefik-buckets.ts';

const values = parse(readFileSync('chart/values.yaml', 'utf8')) as {
  monitoring: { slo: { latencyThresholdSeconds: number } };
};
const schema = JSON.parse(readFileSync('chart/values.schema.json', 'utf8'));
const thresholdChoices = schema.properties.monitoring.properties.slo.properties
  .latencyThresholdSeconds.enum as number[];

test('the buckets hold the default threshold, and every threshold the schema allows is a bound of them and of the functions histogram', (t) => {
  const bounds = bucketBounds(traefikLatencyBuckets());
  t.true(bounds.includes(values.monitoring.slo.latencyThresholdSeconds));
  for (const choice of thresholdChoices) {
    t.true(bounds.includes(choice), `${choice} s is no Traefik bucket`);
    t.true(durationBuckets.includes(choice), `${choice} s is no bucket of the functions`);
  }
  // Traefik's own defaults lack the default threshold: the reason for the setting.
  t.false(bucketBounds('0.1,0.3,1.2,5.0').includes(values.monitoring.slo.latencyThresholdSeconds));
});

test('the bucket parser refuses what Traefik would not take', (t) => {
  t.throws(() => bucketBounds('0.1,,0.3'));
  t.throws(() => bucketBounds('0.3,0.1'));
  t.throws(() => bucketBounds('0.1;0.3'));
});

test("chart/README.md's HelmChartConfig for k3s sets the same buckets", (t) => {
  const readme = readFileSync('chart/README.md', 'utf8');
  const block =
    / {2}```yaml\n( {2}# \/var\/lib\/rancher\/k3s\/server\/manifests\/traefik-config\.yaml[\s\S]*?) {2}```/.exec(
      readme,
    )?.[1];
  t.truthy(block, 'the HelmChartConfig block');
  const config = parse((block as string).replace(/^ {2}/gm, '')) as {
    spec: { valuesContent: string };
  };
  const traefik = parse(config.spec.valuesContent) as {
    metrics: { prometheus: { buckets: string } };
  };
  t.is(traefik.metrics.prometheus.buckets, traefikLatencyBuckets());
});

test("docs/install.md's helm install of Traefik passes the same buckets, as helm's --set reads them", (t) => {
  const install = readFileSync('docs/install.md', 'utf8');
  const command = /helm install traefik traefik\/traefik(?:[^\n]*\\\n)*[^\n]*/.exec(install)?.[0];
  t.truthy(command, 'the helm install command of step 1');
  const sets = [...(command as string).matchAll(/--set '([^']+)'|--set (\S+)/g)].map(
    (match) => (match[1] ?? match[2]) as string,
  );
  t.true(sets.some((set) => set.startsWith('metrics.prometheus.buckets=')));
  // A throwaway chart that prints the value: what Traefik's chart would put in its flag.
  const chart = mkdtempSync(join(tmpdir(), 'secretid-buckets-'));
  mkdirSync(join(chart, 'templates'));
  writeFileSync(join(chart, 'Chart.yaml'), 'apiVersion: v2\nname: probe\nversion: 0.1.0\n');
  writeFileSync(
    join(chart, 'templates', 'value.yaml'),
    'buckets: {{ .Values.metrics.prometheus.buckets | quote }}\n',
  );
  const rendered = runHelm(['template', 'probe', chart, ...sets.flatMap((set) => ['--set', set])]);
  t.is(rendered.status, 0, rendered.stderr);
  t.is((parse(rendered.stdout) as { buckets: string }).buckets, traefikLatencyBuckets());
});
