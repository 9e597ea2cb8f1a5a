/**
 * A function's pod stopped under load on the test cluster, as Kubernetes stops it on a
 * scale-down, a drain or a new revision: no request sent through the edge is lost, and the
 * function's own SIGTERM drain runs inside the pod's grace period (its log says so), after
 * Knative's queue-proxy has drained: Knative's drain and the function's agree. And a new
 * revision rolled out under load: nothing lost, the answers move over.
 */
import { spawn } from 'node:child_process';
import test from 'ava';
import { requireTool } from '../../scripts/tools.ts';
import {
  applyKnativeWith,
  clusterEnvironment,
  curlEdge,
  edgeCaFile,
  edgeHost,
  ensureKnativeServices,
  ensureRelease,
  eventually,
  immediateRollout,
  kubectl,
  kubectlJson,
  namespace,
  release,
  type ServicePod,
  servicePods,
  setAnnotation,
  waitForKnativeServices,
} from './helpers/cluster.ts';
import { byStatus, edgeLoad } from './helpers/load.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test.before(() => {
  ensureRelease(release, namespace);
  ensureKnativeServices();
});

test.serial(
  "an api pod deleted under bounded load: no request lost, and the function's own drain ends inside the grace period, after the queue-proxy's (cluster)",
  async (t) => {
    const caFile = edgeCaFile();
    const url = `https://${edgeHost('api')}/randomName`;
    t.is(curlEdge(url, { caFile, extra: ['--max-time', '30'] }).status, 200, 'a pod serves');
    const pod = servicePods('api')[0] as ServicePod;
    t.truthy(pod, 'a running api pod');
    const grace = pod.graceSeconds;
    // The function's log from now on, until its container ends.
    const follow = spawn(
      requireTool('kubectl'),
      ['-n', namespace, 'logs', '-f', '--since=1s', pod.name, '-c', 'api'],
      { env: clusterEnvironment(), stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const lines: Array<{ at: number; message: string }> = [];
    let started = Date.now();
    follow.stdout.setEncoding('utf8');
    follow.stdout.on('data', (chunk: string) => {
      for (const line of chunk.split('\n').filter(Boolean)) {
        try {
          lines.push({
            at: (Date.now() - started) / 1000,
            message: (JSON.parse(line) as { message: string }).message,
          });
        } catch {
          lines.push({ at: (Date.now() - started) / 1000, message: line });
        }
      }
    });
    const ended = new Promise<void>((resolve) => follow.on('close', () => resolve()));
    // 45 s of load at 4 per second; the pod is deleted 3 s in.
    const load = edgeLoad({ url, caFile, count: 180, perSecond: 4, maxSeconds: 10 });
    await sleep(3000);
    started = Date.now();
    kubectl(['-n', namespace, 'delete', 'pod', pod.name, '--wait=false']);
    await Promise.race([ended, sleep((grace + 15) * 1000)]);
    const containerEnded = (Date.now() - started) / 1000;
    follow.kill();
    const answers = await load.done;
    const when = (text: string) => lines.find((line) => line.message.includes(text))?.at;
    const draining = when('shutting down: draining in-flight requests');
    const stopped = when('stopped');
    t.log(
      `grace period ${grace} s; after the delete: the function's drain began at ${draining?.toFixed(1)} s, it stopped at ${stopped?.toFixed(1)} s, its log ended at ${containerEnded.toFixed(1)} s; answers ${JSON.stringify(byStatus(answers))}`,
    );
    t.deepEqual(byStatus(answers), { 200: answers.length }, 'no request lost');
    t.truthy(draining, `the function got SIGTERM and drained: ${JSON.stringify(lines)}`);
    t.truthy(stopped, 'and stopped by itself');
    t.true((stopped ?? Infinity) < grace, `stopped within the ${grace} s grace period`);
    t.true(
      (draining ?? 0) >= 25,
      "SIGTERM reached the function only after the queue-proxy's drain (about 30 s)",
    );
  },
);

test.serial(
  'a new revision of the api rolled out under steady bounded load loses no request; the answers move from the old revision to the new one (cluster)',
  async (t) => {
    const caFile = edgeCaFile();
    const url = `https://${edgeHost('api')}/randomName`;
    t.is(curlEdge(url, { caFile, extra: ['--max-time', '30'] }).status, 200, 'a pod serves');
    const before = kubectl([
      '-n',
      namespace,
      'get',
      'ksvc',
      'api',
      '-o',
      'jsonpath={.status.latestReadyRevisionName}',
    ]);
    // A new template (one more environment variable, which the api ignores), rolled out over
    // 20 s instead of knative/'s 120 s to keep the suite short.
    try {
      // 45 s at 6 per second; the new revision is applied 5 s in.
      const load = edgeLoad({ url, caFile, count: 270, perSecond: 6, maxSeconds: 10 });
      await sleep(5000);
      applyKnativeWith([
        {
          service: 'api',
          operations: [
            setAnnotation('/metadata/annotations', 'serving.knative.dev/rollout-duration', '20s'),
            {
              op: 'add',
              path: '/spec/template/spec/containers/0/env/-',
              value: { name: 'E2E_ROLLOUT', value: String(Date.now()) },
            },
          ],
        },
      ]);
      const after = await eventually(
        'a new revision with all the traffic',
        () => {
          const status = kubectlJson<{
            status: {
              latestReadyRevisionName?: string;
              traffic?: Array<{ revisionName: string; percent?: number }>;
            };
          }>(['-n', namespace, 'get', 'ksvc', 'api']).status;
          const all = status.traffic?.find((target) => target.percent === 100)?.revisionName;
          return all && all !== before ? all : undefined;
        },
        180_000,
      );
      const answers = await load.done;
      const revisions = answers.reduce<Record<string, number>>((counts, { revision }) => {
        counts[revision] = (counts[revision] ?? 0) + 1;
        return counts;
      }, {});
      t.log(
        `rolled out ${before} -> ${after}: answers by revision ${JSON.stringify(revisions)}, by status ${JSON.stringify(byStatus(answers))}`,
      );
      t.deepEqual(byStatus(answers), { 200: answers.length }, 'no request lost');
      t.true(
        (revisions[before] ?? 0) > 0 && (revisions[after] ?? 0) > 0,
        'both revisions answered',
      );
      t.is(answers.at(-1)?.revision, after, 'the last answers come from the new revision');
    } finally {
      // knative/'s template again, its revision taking the traffic at once, and waited for: an
      // apply of knative/ (120 s rollout) while it is not Ready yet would spread its rollout
      // over 120 s, and the next file would wait for that.
      applyKnativeWith([immediateRollout('api')]);
      waitForKnativeServices();
    }
  },
);
