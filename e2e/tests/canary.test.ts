/**
 * docs/operations.md's canary, run as written with kn against the test cluster: a candidate
 * revision of the api behind a tag, 10 % of the traffic, promotion, rollback, and the files as
 * the source again. Every answer names its revision (Secretid-Revision), so the split is
 * counted. The candidate image `secretid-api:0.2.0` is the api image imported under that name
 * too (e2e/README.md). The only change to knative/ here: no gradual rollout (knative/'s 120 s
 * would spread every step over two minutes), through an overlay.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import test from 'ava';
import { goBinary } from '../actions/go-binaries.ts';
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
  kubectlJson,
  namespace,
  release,
  shellEnvironment,
  writeKnativeOverlay,
} from './helpers/cluster.ts';
import { shellBlocks, shellSession } from './helpers/docs.ts';

let caFile = '';

test.before(() => {
  ensureRelease(release, namespace);
  ensureKnativeServices();
  caFile = edgeCaFile();
  applyKnativeWith([immediateRollout('api')]);
});

test.after.always(() => {
  applyKnative();
});

/** The revision names of `count` answers of `host`, counted. */
const revisionsOf = (host: string, count: number) => {
  const result = spawnSync(
    'curl',
    [
      '-sS',
      '--parallel',
      '--parallel-max',
      '8',
      '--resolve',
      `${host}:443:${edgeAddress()}`,
      '--cacert',
      caFile,
      '-w',
      '%{http_code} %header{secretid-revision}\\n',
      ...Array.from({ length: count }, () => [
        '-o',
        '/dev/null',
        `https://${host}/randomName`,
      ]).flat(),
    ],
    { encoding: 'utf8', timeout: 120_000, maxBuffer: 16 * 1024 * 1024 },
  );
  const counts: Record<string, number> = {};
  for (const line of result.stdout.split('\n').filter(Boolean)) {
    const [status, revision = '-'] = line.split(' ');
    const key = status === '200' ? revision : `status ${status}`;
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
};

/** The Service's traffic as Knative reports it (status.traffic), e.g. { "api-00002": 90 }. */
const trafficStatus = () =>
  Object.fromEntries(
    (
      kubectlJson<{ status: { traffic?: Array<{ revisionName: string; percent?: number }> } }>([
        '-n',
        namespace,
        'get',
        'ksvc',
        'api',
      ]).status.traffic ?? []
    )
      .filter((target) => (target.percent ?? 0) > 0)
      .map((target) => [target.revisionName, target.percent]),
  );

/** Whether the Service's traffic is exactly `expected` (revision name to percent). */
const sameTraffic = (expected: Record<string, number>) => {
  const actual = trafficStatus();
  return (
    Object.keys(actual).length === Object.keys(expected).length &&
    Object.entries(expected).every(([name, percent]) => actual[name] === percent)
  );
};

test.serial(
  "docs/operations.md's canary with kn, run as written: tag host, a 10 % split counted over 400 answers, promotion, rollback, then the files again (cluster)",
  async (t) => {
    const steps = shellBlocks('docs/operations.md', '## A canary, its promotion, and a rollback');
    t.is(steps.length, 7, 'the section has its seven command blocks');
    // One terminal, as a person would use: CURRENT and CANDIDATE carry from step to step.
    // The working folder of a person following the docs: the CA file they fetched beside a
    // knative/ folder, here an overlay over the repository's knative/ that only drops the
    // gradual rollout (step 6 would otherwise wait 120 s for it).
    const workingFolder = dirname(caFile);
    mkdirSync(join(workingFolder, 'knative'));
    writeKnativeOverlay(join(workingFolder, 'knative'), [immediateRollout('api')]);
    const run = shellSession(steps, {
      cwd: workingFolder,
      env: {
        EDGE: edgeAddress(),
        PATH: `${dirname(goBinary('kn'))}:${shellEnvironment().PATH}`,
      },
    });
    const api = edgeHost('api');
    const candidateHost = `candidate-${api}`;

    // 1: where we are.
    const first = run.next();
    t.is(first.status, 0, first.output);
    const current = first.variables.CURRENT as string;
    t.regex(current, /^api-\d{5}$/);

    // 2: the candidate, tagged, without traffic.
    const second = run.next();
    t.is(second.status, 0, second.output);
    const candidate = second.variables.CANDIDATE as string;
    t.regex(candidate, /^api-\d{5}$/);
    t.not(candidate, current);
    const beforeSplit = revisionsOf(api, 40);
    t.deepEqual(
      beforeSplit,
      { [current]: 40 },
      'api.<domain> answers from the current revision only',
    );
    const tagged = revisionsOf(candidateHost, 40);
    t.deepEqual(tagged, { [candidate]: 40 }, 'the tag host reaches the candidate only');
    const curlStep = run.next();
    t.is(curlStep.status, 0, curlStep.output);
    t.regex(curlStep.output, new RegExp(`secretid-revision: ${candidate}`, 'i'));

    // 3: 10 % to the candidate, counted over 400 answers.
    const third = run.next();
    t.is(third.status, 0, third.output);
    await eventually('the 90/10 split in the Service status', () =>
      sameTraffic({ [current]: 90, [candidate]: 10 }) ? true : undefined,
    );
    const split = revisionsOf(api, 400);
    const toCandidate = split[candidate] ?? 0;
    t.log(`10 % split over 400 answers: ${JSON.stringify(split)}`);
    t.is((split[current] ?? 0) + toCandidate, 400, 'every answer from one of the two');
    // Binomial(400, 0.1): mean 40, sd 6; 99.9 % two-sided (z = 3.29) is 40 +- 19.7.
    t.true(toCandidate >= 21 && toCandidate <= 59, `${toCandidate} of 400 to the candidate`);

    // 4: promotion.
    const fourth = run.next();
    t.is(fourth.status, 0, fourth.output);
    await eventually('all traffic on the candidate', () =>
      sameTraffic({ [candidate]: 100 }) ? true : undefined,
    );
    t.deepEqual(revisionsOf(api, 40), { [candidate]: 40 });

    // 5: rollback to the named revision.
    const fifth = run.next();
    t.is(fifth.status, 0, fifth.output);
    await eventually('all traffic back on the current revision', () =>
      sameTraffic({ [current]: 100 }) ? true : undefined,
    );
    t.deepEqual(revisionsOf(api, 40), { [current]: 40 });

    // 6: the files as the source again: a new revision from knative/, taking the traffic.
    const sixth = run.next();
    t.is(sixth.status, 0, sixth.output);
    const latest = await eventually(
      'a new revision from the files, with all traffic',
      () => {
        const traffic = trafficStatus();
        const names = Object.keys(traffic);
        return names.length === 1 &&
          names[0] !== current &&
          names[0] !== candidate &&
          traffic[names[0] as string] === 100
          ? (names[0] as string)
          : undefined;
      },
      180_000,
    );
    t.deepEqual(revisionsOf(api, 40), { [latest]: 40 });
    run.close();
  },
);
