/**
 * Bounded load through the edge, as a client on the host sends it: one curl process, at most
 * `count` requests, either started at `perSecond` or `parallel` at a time, each with its own
 * deadline and the whole within `totalSeconds`, all to the edge address by host name
 * (--resolve) with the chart's CA. It ends by itself; the answers come back as they end.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { edgeAddress } from './cluster.ts';

export interface Answer {
  /** HTTP status; 0 when no answer came within the deadline (or the connection failed). */
  status: number;
  seconds: number;
  /** Seconds since the load began, when this request ended. */
  at: number;
  contentType: string;
  /** The Knative revision that answered (the api's Secretid-Revision header), or ''. */
  revision: string;
}

export interface Load {
  /** Resolves when every request has ended. */
  done: Promise<Answer[]>;
  /** The answers so far. */
  answers: Answer[];
}

export const edgeLoad = (options: {
  url: string;
  caFile: string;
  count: number;
  /** Requests started per second (a steady load); absent with `parallel`. */
  perSecond?: number;
  /** Closed loop: this many requests in flight at once, each started as one ends. */
  parallel?: number;
  /** Deadline of each request. */
  maxSeconds?: number;
  /** Deadline of the whole load: what is still running then is stopped. */
  totalSeconds?: number;
}): Load => {
  if (options.count > 50_000 || (options.perSecond ?? 0) > 50 || (options.parallel ?? 0) > 200)
    throw new Error(
      'edgeLoad is bounded: at most 50,000 requests, at 50 per second or 200 in flight',
    );
  if ((options.perSecond === undefined) === (options.parallel === undefined))
    throw new Error('edgeLoad takes either perSecond or parallel');
  const { hostname, port, protocol } = new URL(options.url);
  const effectivePort = port || (protocol === 'https:' ? '443' : '80');
  const folder = mkdtempSync(join(tmpdir(), 'secretid-e2e-load-'));
  const config = join(folder, 'curl.config');
  writeFileSync(
    config,
    Array.from(
      { length: options.count },
      () => `url = "${options.url}"\noutput = "/dev/null"\n`,
    ).join(''),
  );
  const started = Date.now();
  const answers: Answer[] = [];
  const child = spawn(
    'curl',
    [
      '-sS',
      ...(options.perSecond !== undefined
        ? ['--rate', `${Math.round(options.perSecond * 60)}/m`]
        : ['--parallel', '--parallel-immediate', '--parallel-max', String(options.parallel)]),
      '--max-time',
      String(options.maxSeconds ?? 5),
      '--resolve',
      `${hostname}:${effectivePort}:${edgeAddress()}`,
      '--cacert',
      options.caFile,
      '-w',
      // To stderr, which curl does not buffer: each answer's line arrives as it ends.
      '%{stderr}%{http_code}\\t%{time_total}\\t%{content_type}\\t%header{secretid-revision}\\n',
      '--config',
      config,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let pending = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => {
    pending += chunk;
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    // curl's own messages ("curl: (28) ...") are on stderr too; the answers' lines start with
    // the three digits of the status.
    for (const line of lines.filter((text) => /^\d{3}\t/.test(text))) {
      const [status = '0', seconds = '0', contentType = '', revision = ''] = line.split('\t');
      answers.push({
        status: Number(status),
        seconds: Number(seconds),
        at: (Date.now() - started) / 1000,
        contentType,
        revision,
      });
    }
  });
  const stop = setTimeout(
    () => child.kill(),
    (options.totalSeconds ?? (options.perSecond ? options.count / options.perSecond + 60 : 120)) *
      1000,
  );
  const done = new Promise<Answer[]>((resolve, reject) => {
    child.on('error', reject);
    // curl exits non-zero when a transfer failed; those are in the answers as status 0.
    child.on('close', () => {
      clearTimeout(stop);
      rmSync(folder, { recursive: true, force: true });
      resolve(answers);
    });
  });
  return { done, answers };
};

/** Answers counted by status ("0" for none within the deadline). */
export const byStatus = (answers: Answer[]) =>
  answers.reduce<Record<string, number>>((counts, { status }) => {
    counts[status] = (counts[status] ?? 0) + 1;
    return counts;
  }, {});
