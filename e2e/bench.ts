/**
 * The test cluster's throughput figures (docs/performance.md, "On the test cluster"): the api
 * and the page under the same wrk load four ways, through the edge (TLS at Traefik, Kourier's
 * Envoy, Knative's queue-proxy, the function), to Kourier's gateway as the edge reaches it
 * (plain HTTP, from a node), straight to the pod's queue-proxy port, and straight to the
 * function's own port, each with exactly one pod per function; then both
 * functions' peak memory under that load as Prometheus scraped it, against their limits.
 *
 * Needs a running cluster (`npm run cluster -- up`). knative/ is changed only through an
 * overlay (one pod per function, no gradual rollout) and put back at the end. wrk runs on the
 * host against the edge's address, and in the pod's node namespace against the pod's address:
 * nothing else is a target. Usage: `npm run bench:cluster [-- --seconds 15 --connections 64]`.
 */
import { parseArgs } from 'node:util';
import { formatMs, formatRatio, formatRps } from '../bench/report.ts';
import { runWrk, type WrkResult, wrkVersion } from '../bench/wrk.ts';
import { chartValues } from './lib/chart.ts';
import { labNetwork, nodes } from './lib/settings.ts';
import {
  applyKnative,
  applyKnativeWith,
  edgeAddress,
  edgeCaFile,
  edgeHost,
  ensureKnativeServices,
  ensureRelease,
  eventually,
  immediateRollout,
  ksvcField,
  kubectl,
  namespace,
  promQuery,
  release,
  servicePods,
  servingRevision,
  setAnnotation,
  waitForKnativeServices,
} from './tests/helpers/cluster.ts';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '15' },
    connections: { type: 'string', default: '64' },
  },
});
const seconds = Number(values.seconds);
const connections = Number(values.connections);
if (!(seconds >= 3 && seconds <= 60) || !(connections >= 1 && connections <= 256)) {
  console.error('bench:cluster: --seconds must be 3 to 60 and --connections 1 to 256');
  process.exit(2);
}
if (!wrkVersion()) {
  console.error('bench:cluster: wrk is not on PATH (Debian: apt-get install wrk)');
  process.exit(1);
}
try {
  kubectl(['get', 'nodes']);
} catch (error) {
  console.error(
    `bench:cluster: the test cluster does not answer; start it with \`npm run cluster -- up\`\n${(error as Error).message}`,
  );
  process.exit(1);
}

const functions = [
  { service: 'api', path: '/randomName' },
  { service: 'web', path: '/' },
] as const;

/** The one Ready pod of a service's serving revision (its address and its node's namespace). */
const onePod = (service: string) =>
  eventually(
    `exactly one Ready ${service} pod of the serving revision`,
    () => {
      const revision = servingRevision(service);
      const pods = servicePods(service);
      // Only the serving revision's pod: the replaced revision's pods must be gone too.
      const [pod] = pods;
      if (pods.length !== 1 || !pod?.ready || pod.revision !== revision || !pod.address)
        return undefined;
      const node = nodes.find((candidate) => candidate.name === pod.node);
      return node && { name: pod.name, address: pod.address, namespace: node.namespace };
    },
    300_000,
  );

/** Whether an IPv4 address is inside the harness's lab range (bridges and namespaces it made). */
const inLab = (address: string) => {
  const toNumber = (text: string) =>
    text.split('.').reduce((value, part) => value * 256 + Number(part), 0);
  const [base = '', bits = '32'] = labNetwork.split('/');
  const size = 2 ** (32 - Number(bits));
  return (
    /^\d+\.\d+\.\d+\.\d+$/.test(address) &&
    Math.floor(toNumber(address) / size) === Math.floor(toNumber(base) / size)
  );
};

const load = async (
  url: string,
  options: { headers?: Record<string, string>; prefix?: string[] },
) => {
  const host = new URL(url).hostname;
  if (!inLab(host)) throw new Error(`bench:cluster: ${host} is outside the lab ${labNetwork}`);
  const settings = {
    url,
    threads: 2,
    connections,
    labHosts: [host],
    prefix: options.prefix,
    headers: options.headers,
  };
  // A short warm-up on the same connections' path (keep-alive pools, JIT, Envoy's clusters).
  await runWrk({ ...settings, seconds: 2 });
  return runWrk({ ...settings, seconds });
};

ensureRelease(release, namespace);
ensureKnativeServices();
const started = new Date();
console.log(
  `bench:cluster: one pod per function, wrk -t2 -c${connections} -d${seconds}s --latency per row (${wrkVersion()})`,
);
applyKnativeWith([
  {
    operations: [
      setAnnotation(
        '/spec/template/metadata/annotations',
        'autoscaling.knative.dev/min-scale',
        '1',
      ),
      setAnnotation(
        '/spec/template/metadata/annotations',
        'autoscaling.knative.dev/max-scale',
        '1',
      ),
    ],
  },
  immediateRollout(),
]);
try {
  waitForKnativeServices();
  const results: Array<{ service: string; way: string; result: WrkResult }> = [];
  // The Service the chart's IngressRoute sends the functions' hosts to (edge.kourier).
  const edgeValues = (chartValues().edge as { kourier: Record<string, string | number> }).kourier;
  const kourierAddress = kubectl([
    '-n',
    String(edgeValues.namespace),
    'get',
    'service',
    String(edgeValues.service),
    '-o',
    'jsonpath={.spec.clusterIP}',
  ]);
  const kourier = `${kourierAddress}:${edgeValues.port}`;
  for (const { service, path } of functions) {
    const pod = await onePod(service);
    const inNode = ['ip', 'netns', 'exec', pod.namespace];
    console.log(`  ${service}: pod ${pod.name} at ${pod.address}`);
    const ways = [
      {
        way: 'through the edge (TLS, Traefik, Kourier, queue-proxy)',
        url: `https://${edgeAddress()}${path}`,
        headers: { Host: edgeHost(service) },
      },
      {
        // What the edge forwards to: Kourier's Service, plain HTTP by Host header, from the node.
        way: "Kourier's gateway without the edge (HTTP, Kourier, queue-proxy)",
        url: `http://${kourier}${path}`,
        headers: { Host: edgeHost(service) },
        prefix: inNode,
      },
      {
        way: "straight to the pod's queue-proxy (:8012)",
        url: `http://${pod.address}:8012${path}`,
        prefix: inNode,
      },
      {
        way: "straight to the function's port (:8080)",
        url: `http://${pod.address}:8080${path}`,
        prefix: inNode,
      },
    ];
    for (const { way, url, headers, prefix } of ways) {
      const result = await load(url, { headers, prefix });
      results.push({ service, way, result });
      console.log(
        `    ${way}: ${formatRps(result.requestsPerSecond)}, p99 ${formatMs(result.latencyMs.p99)}, errors ${result.errors}`,
      );
    }
  }
  // Prometheus scrapes every 30 s: wait for one scrape after the last load.
  await new Promise((resolve) => setTimeout(resolve, 35_000));
  const caFile = edgeCaFile();
  const window = `${Math.ceil((Date.now() - started.getTime()) / 1000)}s`;
  console.log('');
  console.log('| function | way | req/s | p99 | errors | ratio to its own port |');
  console.log('|---|---|---:|---:|---:|---:|');
  for (const { service } of functions) {
    const own = results.find(
      (entry) => entry.service === service && entry.way.includes(':8080'),
    ) as (typeof results)[number];
    for (const { way, result } of results.filter((entry) => entry.service === service))
      console.log(
        `| ${service} | ${way} | ${Math.round(result.requestsPerSecond)} | ${formatMs(result.latencyMs.p99)} | ${result.errors} | ${formatRatio(result.requestsPerSecond / own.result.requestsPerSecond)} |`,
      );
  }
  console.log('');
  for (const { service } of functions) {
    const rss = promQuery(
      caFile,
      `max(max_over_time(process_resident_memory_bytes{service="${service}"}[${window}]))`,
    )[0]?.value[1];
    const limit = ksvcField(service, '{.spec.template.spec.containers[0].resources.limits.memory}');
    console.log(
      `${service} peak RSS under these loads (Prometheus, ${window}): ${rss ? `${(Number(rss) / 2 ** 20).toFixed(0)} MiB` : 'no sample'}, limit ${limit}`,
    );
  }
  const failed = results.filter((entry) => entry.result.errors > 0);
  if (failed.length > 0) {
    console.error(
      `bench:cluster: errors in ${failed.map((entry) => `${entry.service} ${entry.way}`).join('; ')}`,
    );
    process.exitCode = 1;
  }
} finally {
  // knative/ again, its revisions taking the traffic at once, then its own rollout setting.
  applyKnativeWith([immediateRollout()]);
  waitForKnativeServices();
  applyKnative();
}
