/**
 * `promtool check config` on the chart's rendered Prometheus configuration. Debian's build of
 * Prometheus 2.42 leaves out Kubernetes service discovery ("field kubernetes_sd_configs not
 * found"), so each kubernetes_sd_configs block is checked here against the fields upstream
 * accepts and then swapped for an empty static_configs before promtool reads the file; every
 * other part (globals, rule files, relabelling, auth, TLS) goes through promtool unchanged, with
 * the pod's service-account file paths pointed at stand-in files.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { parse, stringify } from 'yaml';
import { renderChart } from './helpers/helm.ts';

// biome-ignore lint/suspicious/noExplicitAny: the configuration is plain YAML
type Json = any;

const roles = new Set(['pod', 'endpoints', 'endpointslice', 'service', 'node', 'ingress']);
const discoveryKeys = new Set(['role', 'namespaces', 'selectors', 'attach_metadata']);

/** What upstream Prometheus would refuse in a kubernetes_sd_configs entry. */
const discoveryProblems = (job: string, config: Json): string[] => {
  const problems: string[] = [];
  for (const key of Object.keys(config)) {
    if (!discoveryKeys.has(key)) problems.push(`${job}: unknown field ${key}`);
  }
  if (!roles.has(config.role))
    problems.push(`${job}: role ${config.role} is not a Kubernetes SD role`);
  const names = config.namespaces?.names;
  if (
    config.namespaces &&
    (!Array.isArray(names) || names.some((name: unknown) => typeof name !== 'string' || !name))
  ) {
    problems.push(`${job}: namespaces.names must be a list of names`);
  }
  return problems;
};

for (const [release, namespace, set] of [
  ['secretid', 'default', {}],
  ['agency-7', 'field-ops', { 'monitoring.traefikNamespace': 'traefik' }],
] as const) {
  test(`promtool accepts the rendered configuration and rules (${release} in ${namespace})`, (t) => {
    const objects = renderChart({ release, namespace, set });
    const configMap = objects.find(
      (object) => object.kind === 'ConfigMap' && object.metadata.name.endsWith('-prometheus'),
    ) as Json;
    t.truthy(configMap, 'the chart renders the Prometheus ConfigMap');
    const directory = mkdtempSync(join(tmpdir(), 'secretid-promtool-'));
    t.teardown(() => rmSync(directory, { recursive: true, force: true }));
    mkdirSync(join(directory, 'rules'));
    // The pod's service-account files, which promtool insists exist, stand in as empty files.
    const serviceAccount = join(directory, 'serviceaccount');
    mkdirSync(serviceAccount);
    for (const file of ['token', 'ca.crt']) writeFileSync(join(serviceAccount, file), '');
    const config = parse(
      configMap.data['prometheus.yml'].replaceAll(
        '/var/run/secrets/kubernetes.io/serviceaccount',
        serviceAccount,
      ),
    );
    t.deepEqual(
      config.rule_files,
      ['/etc/prometheus/rules/*.yml'],
      'where the Deployment mounts the rules',
    );
    const problems: string[] = [];
    let discovered = 0;
    for (const job of config.scrape_configs) {
      for (const entry of job.kubernetes_sd_configs ?? []) {
        problems.push(...discoveryProblems(job.job_name, entry));
        discovered++;
        for (const name of entry.namespaces?.names ?? []) {
          if (name === namespace) continue;
          t.true(
            ['knative-serving', set['monitoring.traefikNamespace'] ?? 'kube-system'].includes(name),
            `${job.job_name}: namespace ${name}`,
          );
        }
      }
      if (job.kubernetes_sd_configs) {
        delete job.kubernetes_sd_configs;
        job.static_configs = [{ targets: [] }];
      }
    }
    t.deepEqual(problems, []);
    t.true(
      discovered >= 6,
      'functions, queue-proxy, activator, traefik, kube-state-metrics, exporter, kubelet',
    );
    for (const [key, text] of Object.entries(configMap.data as Record<string, string>)) {
      if (key !== 'prometheus.yml') writeFileSync(join(directory, 'rules', key), text);
    }
    config.rule_files = [join(directory, 'rules', '*.yml')];
    writeFileSync(join(directory, 'prometheus.yml'), stringify(config));
    const result = spawnSync('promtool', ['check', 'config', join(directory, 'prometheus.yml')], {
      encoding: 'utf8',
    });
    t.is(result.status, 0, `${result.stdout}${result.stderr}`);
    t.regex(result.stdout, /SUCCESS: \d+ rules found/);
  });
}

test('the discovery check fires on what upstream Prometheus refuses', (t) => {
  t.deepEqual(discoveryProblems('x', { role: 'pod', namespaces: { names: ['a'] } }), []);
  t.is(discoveryProblems('x', { role: 'pods' }).length, 1);
  t.is(discoveryProblems('x', { role: 'pod', namespace: 'a' }).length, 1);
  t.is(discoveryProblems('x', { role: 'pod', namespaces: { names: [''] } }).length, 1);
});
