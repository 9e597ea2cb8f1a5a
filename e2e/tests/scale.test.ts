/**
 * Knative's scale to zero on the test cluster: with no traffic both functions go to zero pods,
 * and the next request through the edge is answered (200, an identity, not the "unavailable"
 * page). The scale-from-zero latency is measured five times each, from a client on the host
 * through Traefik with TLS: the api alone, and the page with both functions at zero (what a
 * person's first visit after an idle spell costs). The images are already on the nodes. Zero
 * means no pod of the serving revision that is not terminating: one still draining serves
 * nothing new.
 *
 * To keep the suite short, the functions run here with the shortest windows Knative allows
 * (an overlay over knative/: no scale-down delay, a 6 s stable window, no gradual rollout) and
 * config-autoscaler's scale-to-zero grace period at 1 s; for the autoscaling test the api's
 * target is 1 request in flight (see the overlay); everything is put back afterwards.
 */
import test from 'ava';
import { chartValues } from '../lib/chart.ts';
import {
  applyKnative,
  applyKnativeWith,
  curlEdge,
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
  upgradeRelease,
  waitForKnativeServices,
} from './helpers/cluster.ts';
import { runBlock, shellBlocks } from './helpers/docs.ts';
import { byStatus, edgeLoad } from './helpers/load.ts';

// The shortest stable window Knative accepts, and a one-second grace before zero.
const window = '6s';
const grace = '1s';
/** The chart's synthetic probe on or off: its requests would wake a function being timed at zero. */
const setProbe = (enabled: boolean) => upgradeRelease({ 'probe.enabled': enabled });

test.before(() => {
  ensureRelease(release, namespace);
  ensureKnativeServices();
  setProbe(false);
  applyKnativeWith([
    {
      // knative/'s target of 100 in flight per pod is never reached here: the api answers in
      // well under a millisecond, and the edge (TLS, Traefik, Kourier on the same 2 cores)
      // tops out first (about 850 requests per second with 100 in flight, one api pod,
      // measured on this cluster). A target of 1 shows the autoscaler at work.
      service: 'api',
      operations: [
        setAnnotation('/spec/template/metadata/annotations', 'autoscaling.knative.dev/target', '1'),
      ],
    },
    immediateRollout(),
    {
      operations: [
        setAnnotation(
          '/spec/template/metadata/annotations',
          'autoscaling.knative.dev/scale-down-delay',
          '0s',
        ),
        setAnnotation(
          '/spec/template/metadata/annotations',
          'autoscaling.knative.dev/window',
          window,
        ),
      ],
    },
  ]);
  kubectl([
    '-n',
    'knative-serving',
    'patch',
    'configmap',
    'config-autoscaler',
    '--type',
    'merge',
    '-p',
    JSON.stringify({ data: { 'scale-to-zero-grace-period': grace } }),
  ]);
  waitForKnativeServices();
});

test.after.always(() => {
  setProbe((chartValues().probe as { enabled: boolean }).enabled);
  // knative/ and knative/platform as they are (the platform as knative/README.md applies it).
  // Not waited for: the new revision takes its traffic over knative/'s 120 s rollout, and the
  // files that need the services wait for them (ensureKnativeServices).
  applyKnative();
  const platform = shellBlocks('knative/README.md', '## Install order')[1] as string;
  const restored = runBlock(platform);
  if (restored.status !== 0) throw new Error(`restoring knative/platform: ${restored.output}`);
});

/**
 * Waits until neither function's serving revision has a pod that is not terminating; returns
 * the seconds. (The revisions the overlay replaced keep knative/'s 60 s scale-down delay and
 * go later; they take no traffic.)
 */
const bothAtZero = async () => {
  const started = Date.now();
  const serving = { api: servingRevision('api'), web: servingRevision('web') };
  await eventually(
    'both functions at zero pods',
    () =>
      (['api', 'web'] as const).every(
        (service) => !servicePods(service).some((pod) => pod.revision === serving[service]),
      ),
    180_000,
  );
  return (Date.now() - started) / 1000;
};

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
};

test.serial(
  'both functions scale to zero without traffic, and each of 5 requests after that is answered through the edge: the api, and the page with both at zero (cluster)',
  async (t) => {
    const caFile = edgeCaFile();
    const timings: Record<'api' | 'page', number[]> = { api: [], page: [] };
    const toZero: number[] = [];
    for (let round = 0; round < 5; round++) {
      for (const which of ['api', 'page'] as const) {
        toZero.push(await bothAtZero());
        const started = Date.now();
        const answer =
          which === 'api'
            ? curlEdge(`https://${edgeHost('api')}/randomName`, {
                caFile,
                extra: ['--max-time', '30'],
              })
            : curlEdge(`https://${edgeHost('web')}/`, { caFile, extra: ['--max-time', '30'] });
        timings[which].push((Date.now() - started) / 1000);
        t.is(answer.status, 200, `${which}, round ${round + 1}: ${answer.body.slice(0, 300)}`);
        if (which === 'api') t.truthy((JSON.parse(answer.body) as { fullName?: string }).fullName);
        else
          t.regex(
            answer.body,
            /<p class="full-name">[^<]+<\/p>/,
            'an identity, not the unavailable page',
          );
      }
    }
    const format = (values: number[]) => values.map((value) => value.toFixed(2)).join(', ');
    t.log(
      `scale from zero, api: median ${median(timings.api).toFixed(2)} s, worst ${Math.max(...timings.api).toFixed(2)} s (${format(timings.api)})`,
    );
    t.log(
      `scale from zero, page with both at zero: median ${median(timings.page).toFixed(2)} s, worst ${Math.max(...timings.page).toFixed(2)} s (${format(timings.page)})`,
    );
    t.log(
      `from the last answer to zero pods: median ${median(toZero.slice(1)).toFixed(1)} s, worst ${Math.max(...toZero.slice(1)).toFixed(1)} s (stable window ${window}, grace period ${grace})`,
    );
  },
);

test.serial(
  'under a bounded load of 100 requests in flight the api scales above one pod (a target of 1 in flight), answers every request, and scales down under a steady load without losing a request (cluster)',
  async (t) => {
    const caFile = edgeCaFile();
    const url = `https://${edgeHost('api')}/randomName`;
    t.is(curlEdge(url, { caFile, extra: ['--max-time', '30'] }).status, 200);
    // At most 40,000 requests, 100 at a time, for at most 30 s.
    const load = edgeLoad({
      url,
      caFile,
      count: 40_000,
      parallel: 100,
      totalSeconds: 30,
      maxSeconds: 10,
    });
    const started = Date.now();
    const timeline: string[] = [];
    let most = 0;
    const sample = () => {
      const pods = servicePods('api').filter((pod) => pod.ready).length;
      most = Math.max(most, pods);
      timeline.push(`${((Date.now() - started) / 1000).toFixed(0)}s:${pods}`);
      return pods;
    };
    let finished = false;
    load.done.then(() => {
      finished = true;
    });
    while (!finished) {
      sample();
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
    const answers = await load.done;
    const loadSeconds = (Date.now() - started) / 1000;
    // A scale-down under load: 40 s at 5 per second while the api goes back down to one pod.
    const steady = edgeLoad({ url, caFile, count: 200, perSecond: 5, maxSeconds: 10 });
    let steadyDone = false;
    steady.done.then(() => {
      steadyDone = true;
    });
    let fewest = Number.POSITIVE_INFINITY;
    while (!steadyDone) {
      fewest = Math.min(fewest, sample());
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
    const steadyAnswers = await steady.done;
    // Back down: with knative/'s delays shortened for the suite, to zero within a minute or two.
    await eventually(
      'the api back down to zero pods',
      () => (sample() === 0 ? true : undefined),
      180_000,
    );
    // Memory under that load, as Prometheus scraped it from the api's pods (every 30 s).
    const rss = promQuery(
      caFile,
      'max(max_over_time(process_resident_memory_bytes{service="api"}[5m]))',
    )[0]?.value[1];
    const limit = ksvcField('api', '{.spec.template.spec.containers[0].resources.limits.memory}');
    t.log(
      `api peak RSS under the load (Prometheus): ${(Number(rss) / 2 ** 20).toFixed(0)} MiB, limit ${limit}`,
    );
    const counts = byStatus(answers);
    t.log(
      `${answers.length} requests in ${loadSeconds.toFixed(1)} s (${(answers.length / loadSeconds).toFixed(0)}/s): ${JSON.stringify(counts)}`,
    );
    t.log(`ready api pods over time: ${timeline.join(' ')}`);
    t.log(
      `scale-down under 5 requests per second: from ${most} to ${fewest} pods, answers ${JSON.stringify(byStatus(steadyAnswers))}`,
    );
    t.true(most >= 2, `the api went above one pod (at most ${most})`);
    // Open (issue 12): with the target at 1 the revision goes from 1 to 10 pods in about 10 s
    // on 2 cores, and a few requests in thousands were answered 503 while it did (3 of 5,894
    // once). Every answer must still come, as an identity or a 503, never a hang or a reset.
    t.log(`answers while scaling up: ${JSON.stringify(counts)}`);
    // Who answered each failure: the api's 503 is a problem document naming its revision; a
    // text/plain one without a revision comes from Knative's activator or Kourier's Envoy.
    for (const failure of answers.filter((answer) => answer.status !== 200).slice(0, 20))
      t.log(
        `  ${failure.status} at ${failure.at.toFixed(1)} s after ${failure.seconds.toFixed(2)} s: ${failure.contentType || 'no content type'}, revision ${failure.revision || 'none'}`,
      );
    t.deepEqual(
      Object.keys(counts).filter((status) => status !== '200' && status !== '503'),
      [],
      'only identities and 503s while scaling up',
    );
    t.true(
      (counts['200'] ?? 0) >= answers.length * 0.99,
      'at least 99 % identities while scaling up',
    );
    t.true(fewest < most, 'it scaled down while the steady load ran');
    t.deepEqual(
      byStatus(steadyAnswers),
      { 200: steadyAnswers.length },
      'the scale-down lost nothing',
    );
  },
);
