/**
 * The performance benchmark, in one run on one machine (see docs/performance.md):
 *
 * 1. ceiling: a bare @hono/node-server handler (bench/ceiling-server.ts) under wrk;
 * 2. the API bundle's GET /randomName against a real PostgreSQL, under the same load;
 * 3. the web bundle's GET / (web -> API) under the same load;
 * 4. cold start of the API bundle: spawn to first 200 on /randomName, repeated;
 * 5. peak RSS (VmHWM) of the API and web processes under load.
 *
 * Usage: node bench/run.ts [--json FILE]     (npm run bench builds the bundles first)
 * Environment: BENCH_SECONDS (10), BENCH_WARMUP_SECONDS (2), BENCH_COLD_RUNS (11),
 * BENCH_JSON (path, same as --json).
 *
 * Exits 0 whether or not the targets are met (the last line says how many were); 1 when the
 * benchmark itself could not run; 130 on Ctrl-C. Every process and the database are removed.
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, release, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { build, stop as stopEsbuild } from 'esbuild';
import { bundles } from '../scripts/build.ts';
import { freePort } from '../test/helpers/free-port.ts';
import { createNamesDatabase } from '../test/helpers/names-database.ts';
import { startPostgres, type TestPostgres } from '../test/helpers/postgres.ts';
import { type CpuUsage, measureCpu } from './cpu.ts';
import {
  liveChildren,
  readMemory,
  type ServerProcess,
  sampleRss,
  startProcess,
  stopProcess,
  waitFor200,
} from './processes.ts';
import {
  formatMb,
  formatMs,
  formatRatio,
  formatRps,
  formatShare,
  formatUs,
  kbToMb,
  median,
  type Row,
  renderTable,
} from './report.ts';
import { runWrk, type WrkResult, wrkVersion } from './wrk.ts';

const root = resolve(import.meta.dirname, '..');
const cpuCount = availableParallelism();

const positiveInteger = (name: string, fallback: number) => {
  const raw = process.env[name]?.trim();
  if (!raw) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0) {
    throw new Error(`${name} must be a non-negative integer, got "${raw}"`);
  }
  return value;
};

const { values: flags } = parseArgs({
  options: { json: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
});
if (flags.help) {
  process.stdout.write(
    'usage: node bench/run.ts [--json FILE]\n' +
      'env: BENCH_SECONDS=10 BENCH_WARMUP_SECONDS=2 BENCH_COLD_RUNS=11 BENCH_JSON=path\n',
  );
  process.exit(0);
}

const settings = {
  seconds: Math.max(1, positiveInteger('BENCH_SECONDS', 10)),
  warmupSeconds: positiveInteger('BENCH_WARMUP_SECONDS', 2),
  coldRuns: Math.max(1, positiveInteger('BENCH_COLD_RUNS', 11)),
  threads: 2,
  connections: 32,
  coldPollIntervalMs: 2,
};
const jsonPath = flags.json ?? process.env.BENCH_JSON?.trim() ?? undefined;

const targets = {
  apiThroughputRatio: 0.8,
  coldStartMedianMs: 300,
  apiPeakRssMb: 100,
};

const wrk = wrkVersion();
if (!wrk) {
  process.stderr.write('wrk not found on PATH: install wrk: apt-get install wrk\n');
  process.exit(1);
}
const apiBundle = join(root, bundles.api.output);
const webBundle = join(root, bundles.web.output);
if (!existsSync(apiBundle)) {
  process.stderr.write(`${bundles.api.output} missing: run npm run build (or npm run bench)\n`);
  process.exit(1);
}

// ---- clean-up: every process and the database go, on success, failure or Ctrl-C -----------

const workDir = mkdtempSync(join(tmpdir(), 'secretid-bench-'));
const servers = new Set<ServerProcess>();
let wrkChild: ChildProcess | undefined;
let postgres: TestPostgres | undefined;

const destroyPostgres = () => {
  const server = postgres;
  postgres = undefined;
  server?.destroy();
};

let cleaning: Promise<void> | undefined;
const cleanUp = () => {
  cleaning ??= (async () => {
    wrkChild?.kill('SIGKILL');
    await Promise.all([...servers].map((server) => stopProcess(server, 5000)));
    destroyPostgres();
    rmSync(workDir, { recursive: true, force: true });
  })();
  return cleaning;
};
// Last resort if something exits the process early: nothing may outlive the benchmark.
process.on('exit', () => {
  for (const child of liveChildren) child.kill('SIGKILL');
  wrkChild?.kill('SIGKILL');
  try {
    destroyPostgres();
  } catch {
    // best effort
  }
  rmSync(workDir, { recursive: true, force: true });
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (cleaning) process.exit(130); // second Ctrl-C: the exit hook kills what is left
    process.stderr.write(`\n${signal}: stopping the servers and removing the database...\n`);
    void cleanUp().finally(() => process.exit(130));
  });
}

// ---- steps ---------------------------------------------------------------------------------

const log = (message: string) => process.stderr.write(`[bench] ${message}\n`);

const start = async (name: string, args: string[], env: Record<string, string> = {}) => {
  const port = await freePort();
  const server = startProcess({
    name,
    args,
    env: { PORT: String(port), ...env },
    port,
    cwd: root,
    logFile: join(workDir, `${name}-${servers.size}-${Date.now()}.log`),
  });
  servers.add(server);
  void server.exited.then(() => servers.delete(server));
  return server;
};

const stop = async (server: ServerProcess) => {
  await stopProcess(server);
  servers.delete(server);
};

/** Warm-up, then the measured wrk run with RSS sampling and CPU accounting of `watched`. */
const loadAndMeasure = async (name: string, url: string, watched: ServerProcess[]) => {
  const run = (seconds: number) =>
    runWrk({
      url,
      threads: settings.threads,
      connections: settings.connections,
      seconds,
      onSpawn: (child) => {
        wrkChild = child;
      },
    });
  if (settings.warmupSeconds > 0) {
    log(`${name}: warm-up ${settings.warmupSeconds}s on ${url}`);
    await run(settings.warmupSeconds);
  }
  log(`${name}: wrk -t${settings.threads} -c${settings.connections} -d${settings.seconds}s`);
  const samplers = watched.map((server) => sampleRss(server.pid));
  const cpuDone = measureCpu(watched, cpuCount);
  const wrkResult = await run(settings.seconds);
  wrkChild = undefined;
  const cpu = cpuDone();
  const sampled = samplers.map((stopSampling) => stopSampling());
  const memory = watched.map((server, index) => ({
    process: server.name,
    hwmKb: readMemory(server.pid).hwmKb,
    sampledPeakRssKb: sampled[index]?.maxKb ?? 0,
    rssAtStartKb: sampled[index]?.firstKb ?? 0,
    rssAtEndKb: sampled[index]?.lastKb ?? 0,
  }));
  const serverCpuMs = Object.values(cpu.serversMs).reduce((sum, ms) => sum + ms, 0);
  const cpuPerRequestUs = (serverCpuMs * 1000) / Math.max(1, wrkResult.requests);
  log(
    `${name}: ${formatRps(wrkResult.requestsPerSecond)}, p99 ${formatMs(wrkResult.latencyMs.p99)}, ` +
      `errors ${wrkResult.errors}, server CPU ${cpuPerRequestUs.toFixed(1)} µs/request, ` +
      `other load ${formatShare(cpu.otherShare)}, steal ${formatShare(cpu.stealShare)}`,
  );
  return { wrk: wrkResult, memory, cpu, cpuPerRequestUs };
};

const coldStarts = async (name: string, args: string[], path: string, env = {}) => {
  const times: number[] = [];
  const rssAtReadyKb: number[] = [];
  // Reaped servers count as this process's children, so "other" is everything else (and PostgreSQL).
  const cpuDone = measureCpu([], cpuCount);
  for (let run = 1; run <= settings.coldRuns; run++) {
    const server = await start(`${name}-cold`, args, env);
    try {
      const ms = await waitFor200(server, `http://127.0.0.1:${server.port}${path}`, {
        intervalMs: settings.coldPollIntervalMs,
        timeoutMs: 30_000,
      });
      times.push(ms);
      rssAtReadyKb.push(readMemory(server.pid).rssKb);
    } finally {
      await stop(server);
    }
  }
  log(`${name} cold start: ${times.map((ms) => Math.round(ms)).join(', ')} ms`);
  return {
    runs: times.length,
    timesMs: times,
    medianMs: median(times),
    minMs: Math.min(...times),
    maxMs: Math.max(...times),
    /** RSS right after the first 200, before any load: the idle footprint. */
    rssAtReadyMedianKb: median(rssAtReadyKb),
    cpu: cpuDone(),
  };
};

type PageResult =
  | {
      status: 'measured';
      wrk: WrkResult;
      cpu: CpuUsage;
      cpuPerRequestUs: number;
      webHwmKb: number;
      memory: Awaited<ReturnType<typeof loadAndMeasure>>['memory'];
    }
  | { status: 'skipped' | 'error'; reason: string };

const main = async () => {
  const startedAt = new Date();
  const machine = {
    date: startedAt.toISOString(),
    node: process.version,
    cpus: cpuCount,
    loadAverage: loadavg().map((load) => Number(load.toFixed(2))),
    cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
    kernel: `${process.platform} ${release()}`,
    wrk,
  };
  console.log(`secretid benchmark — ${machine.date}`);
  console.log(
    `node ${machine.node}, ${machine.cpus} CPUs (${machine.cpuModel}), ${machine.kernel}, ` +
      `load average ${machine.loadAverage.join(' ')}`,
  );
  console.log(
    `${machine.wrk}; load: -t${settings.threads} -c${settings.connections} -d${settings.seconds}s after ${settings.warmupSeconds}s warm-up; ${settings.coldRuns} cold starts`,
  );

  // 1. Ceiling.
  // Bundled like the functions (scripts/build.ts), so that cold start and RSS compare like with
  // like: running the .ts through type stripping would add ~50 ms and ~18 MB to the baseline.
  const ceilingBundle = join(workDir, 'ceiling-server.mjs');
  await build({
    entryPoints: [join(root, 'bench/ceiling-server.ts')],
    outfile: ceilingBundle,
    bundle: true,
    platform: 'node',
    target: 'node24',
    format: 'esm',
    minify: true,
    logLevel: 'warning',
  });
  await stopEsbuild();
  const ceilingArgs = [ceilingBundle];
  const ceiling = await start('ceiling', ceilingArgs);
  await waitFor200(ceiling, `http://127.0.0.1:${ceiling.port}/`, { intervalMs: 20 });
  const ceilingRun = await loadAndMeasure('ceiling', `http://127.0.0.1:${ceiling.port}/`, [
    ceiling,
  ]);
  await stop(ceiling);
  const ceilingHwmKb = ceilingRun.memory[0]?.hwmKb ?? Number.NaN;

  // 2. API against a real, seeded PostgreSQL.
  log('starting PostgreSQL and seeding the names database');
  postgres = await startPostgres();
  const { readerUrl } = await createNamesDatabase(postgres);
  const apiEnv = { DATABASE_URL: readerUrl };
  const api = await start('api', [apiBundle], apiEnv);
  await waitFor200(api, `http://127.0.0.1:${api.port}/readyz`, { intervalMs: 20 });
  const apiRun = await loadAndMeasure('api', `http://127.0.0.1:${api.port}/randomName`, [api]);
  const apiHwmAfterApiLoadKb = apiRun.memory[0]?.hwmKb ?? Number.NaN;

  // 3. Page: web -> API.
  let page: PageResult;
  if (!existsSync(webBundle)) {
    page = { status: 'skipped', reason: `skipped: ${bundles.web.output} missing` };
    log(page.reason);
  } else {
    try {
      const web = await start('web', [webBundle], { API_URL: `http://127.0.0.1:${api.port}` });
      await waitFor200(web, `http://127.0.0.1:${web.port}/`, { intervalMs: 20 });
      const pageRun = await loadAndMeasure('page', `http://127.0.0.1:${web.port}/`, [web, api]);
      page = {
        status: 'measured',
        wrk: pageRun.wrk,
        cpu: pageRun.cpu,
        cpuPerRequestUs: pageRun.cpuPerRequestUs,
        webHwmKb: pageRun.memory[0]?.hwmKb ?? Number.NaN,
        memory: pageRun.memory,
      };
      await stop(web);
    } catch (error) {
      page = { status: 'error', reason: `error: ${(error as Error).message.split('\n')[0]}` };
      log(`page benchmark failed: ${(error as Error).message}`);
    }
  }
  // VmHWM never decreases: this is the API's peak over its own load and the page load.
  const apiHwmKb = readMemory(api.pid).hwmKb;
  await stop(api);

  // 4. Cold starts, with nothing else running.
  log(`cold starts: ${settings.coldRuns} × ceiling, ${settings.coldRuns} × api`);
  const ceilingCold = await coldStarts('ceiling', ceilingArgs, '/');
  const apiCold = await coldStarts('api', [apiBundle], '/randomName', apiEnv);

  // ---- table ----
  const rows: Row[] = [];
  const checks: { name: string; pass: boolean }[] = [];
  const c = ceilingRun.wrk;
  const a = apiRun.wrk;
  const errorsNote = (result: WrkResult) => (result.errors ? ` (${result.errors} errors!)` : '');
  rows.push({
    metric: 'ceiling: bare node-server, req/s',
    measured: formatRps(c.requestsPerSecond) + errorsNote(c),
    baseline: '-',
    ratio: '1.00',
    target: '-',
    status: '-',
  });
  rows.push({
    metric: 'ceiling: p99 latency',
    measured: formatMs(c.latencyMs.p99),
    baseline: '-',
    ratio: '1.00',
    target: '-',
    status: '-',
  });
  const apiRatio = a.requestsPerSecond / c.requestsPerSecond;
  const apiThroughputPass = apiRatio >= targets.apiThroughputRatio && a.errors === 0;
  checks.push({
    name: `API throughput ≥ ${targets.apiThroughputRatio} × ceiling (no errors)`,
    pass: apiThroughputPass,
  });
  rows.push({
    metric: 'API GET /randomName, req/s',
    measured: formatRps(a.requestsPerSecond) + errorsNote(a),
    baseline: formatRps(c.requestsPerSecond),
    ratio: formatRatio(apiRatio),
    target: `≥ ${targets.apiThroughputRatio.toFixed(2)} × ceiling`,
    status: apiThroughputPass ? 'PASS' : 'FAIL',
  });
  rows.push({
    metric: 'API GET /randomName, p99',
    measured: formatMs(a.latencyMs.p99),
    baseline: formatMs(c.latencyMs.p99),
    ratio: formatRatio(a.latencyMs.p99 / c.latencyMs.p99),
    target: '-',
    status: '-',
  });
  rows.push({
    metric: 'API CPU per request (server process)',
    measured: formatUs(apiRun.cpuPerRequestUs),
    baseline: formatUs(ceilingRun.cpuPerRequestUs),
    ratio: formatRatio(apiRun.cpuPerRequestUs / ceilingRun.cpuPerRequestUs),
    target: '-',
    status: '-',
  });
  if (page.status === 'measured') {
    const p = page.wrk;
    rows.push({
      metric: 'page GET / (web -> API), req/s',
      measured: formatRps(p.requestsPerSecond) + errorsNote(p),
      baseline: formatRps(c.requestsPerSecond),
      ratio: formatRatio(p.requestsPerSecond / c.requestsPerSecond),
      target: '-',
      status: '-',
    });
    rows.push({
      metric: 'page GET / (web -> API), p99',
      measured: formatMs(p.latencyMs.p99),
      baseline: formatMs(c.latencyMs.p99),
      ratio: formatRatio(p.latencyMs.p99 / c.latencyMs.p99),
      target: '-',
      status: '-',
    });
    rows.push({
      metric: 'page CPU per request (web + API)',
      measured: formatUs(page.cpuPerRequestUs),
      baseline: formatUs(ceilingRun.cpuPerRequestUs),
      ratio: formatRatio(page.cpuPerRequestUs / ceilingRun.cpuPerRequestUs),
      target: '-',
      status: '-',
    });
  } else {
    for (const metric of [
      'page GET / (web -> API), req/s',
      'page GET / (web -> API), p99',
      'page CPU per request (web + API)',
    ]) {
      rows.push({
        metric,
        measured: page.reason,
        baseline: '-',
        ratio: '-',
        target: '-',
        status: 'SKIP',
      });
    }
  }
  const coldPass = apiCold.medianMs <= targets.coldStartMedianMs;
  checks.push({ name: `API cold start median ≤ ${targets.coldStartMedianMs} ms`, pass: coldPass });
  rows.push({
    metric: `API cold start to first 200, median of ${apiCold.runs}`,
    measured: formatMs(apiCold.medianMs),
    baseline: formatMs(ceilingCold.medianMs),
    ratio: formatRatio(apiCold.medianMs / ceilingCold.medianMs),
    target: `≤ ${targets.coldStartMedianMs} ms`,
    status: coldPass ? 'PASS' : 'FAIL',
  });
  rows.push({
    metric: 'API cold start, min',
    measured: formatMs(apiCold.minMs),
    baseline: formatMs(ceilingCold.minMs),
    ratio: formatRatio(apiCold.minMs / ceilingCold.minMs),
    target: '-',
    status: '-',
  });
  rows.push({
    metric: 'API cold start, max',
    measured: formatMs(apiCold.maxMs),
    baseline: formatMs(ceilingCold.maxMs),
    ratio: formatRatio(apiCold.maxMs / ceilingCold.maxMs),
    target: '-',
    status: '-',
  });
  rows.push({
    metric: 'API RSS at first 200, idle (median)',
    measured: formatMb(apiCold.rssAtReadyMedianKb),
    baseline: formatMb(ceilingCold.rssAtReadyMedianKb),
    ratio: formatRatio(apiCold.rssAtReadyMedianKb / ceilingCold.rssAtReadyMedianKb),
    target: '-',
    status: '-',
  });
  const rssPass = kbToMb(apiHwmKb) <= targets.apiPeakRssMb;
  checks.push({ name: `API peak RSS ≤ ${targets.apiPeakRssMb} MB`, pass: rssPass });
  rows.push({
    metric: 'API peak RSS under load (VmHWM)',
    measured:
      page.status === 'measured'
        ? `${formatMb(apiHwmKb)} (${formatMb(apiHwmAfterApiLoadKb)} before the page run)`
        : formatMb(apiHwmKb),
    baseline: formatMb(ceilingHwmKb),
    ratio: formatRatio(apiHwmKb / ceilingHwmKb),
    target: `≤ ${targets.apiPeakRssMb} MB`,
    status: rssPass ? 'PASS' : 'FAIL',
  });
  rows.push(
    page.status === 'measured'
      ? {
          metric: 'web peak RSS under load (VmHWM)',
          measured: formatMb(page.webHwmKb),
          baseline: formatMb(ceilingHwmKb),
          ratio: formatRatio(page.webHwmKb / ceilingHwmKb),
          target: '-',
          status: '-',
        }
      : {
          metric: 'web peak RSS under load (VmHWM)',
          measured: page.reason,
          baseline: '-',
          ratio: '-',
          target: '-',
          status: 'SKIP',
        },
  );

  console.log('');
  console.log(renderTable(rows));
  console.log('');
  console.log(
    'baseline: the bare node-server ceiling (bench/ceiling-server.ts) measured in this same run; ' +
      'MB = 10^6 bytes.',
  );
  const cpuRuns: [string, CpuUsage][] = [
    ['ceiling', ceilingRun.cpu],
    ['api', apiRun.cpu],
    ...(page.status === 'measured' ? [['page', page.cpu] as [string, CpuUsage]] : []),
    ['cold-start', apiCold.cpu],
  ];
  console.log(
    `other CPU load during the measured runs (not the benchmark's processes): ${cpuRuns
      .map(
        ([name, cpu]) =>
          `${name} ${formatShare(cpu.otherShare)} (steal ${formatShare(cpu.stealShare)})`,
      )
      .join(', ')}`,
  );
  for (const [name, cpu] of cpuRuns.filter(([, cpu]) => cpu.otherShare + cpu.stealShare > 0.1)) {
    console.log(
      `WARNING: the ${name} measurement shared the machine with other work (${formatShare(cpu.otherShare + cpu.stealShare)} of its CPU): its figures are pessimistic and noisy (CPU per request is the steadier one); re-run on an idle machine.`,
    );
  }
  const loads = [c, a, ...(page.status === 'measured' ? [page.wrk] : [])];
  for (const result of loads.filter((result) => result.errors > 0)) {
    console.log(
      `WARNING: ${result.url}: ${result.non2xx} non-2xx responses, socket errors ${JSON.stringify(result.socketErrors)}`,
    );
  }
  const met = checks.filter((check) => check.pass).length;
  for (const check of checks.filter((check) => !check.pass)) console.log(`MISSED: ${check.name}`);
  console.log(`targets met: ${met}/${checks.length}`);

  if (jsonPath) {
    const output = resolve(process.cwd(), jsonPath);
    const stripRaw = ({ raw: _raw, ...rest }: WrkResult) => rest;
    writeFileSync(
      output,
      `${JSON.stringify(
        {
          machine,
          settings,
          targets,
          results: {
            ceiling: {
              wrk: stripRaw(c),
              cpu: ceilingRun.cpu,
              cpuPerRequestUs: ceilingRun.cpuPerRequestUs,
              hwmKb: ceilingHwmKb,
              memory: ceilingRun.memory,
            },
            api: {
              wrk: stripRaw(a),
              cpu: apiRun.cpu,
              cpuPerRequestUs: apiRun.cpuPerRequestUs,
              memory: apiRun.memory,
              hwmAfterApiLoadKb: apiHwmAfterApiLoadKb,
              hwmKb: apiHwmKb,
            },
            page: page.status === 'measured' ? { ...page, wrk: stripRaw(page.wrk) } : page,
            coldStart: { api: apiCold, ceiling: ceilingCold },
          },
          rows,
          checks,
          targetsMet: met,
          targetsTotal: checks.length,
        },
        null,
        2,
      )}\n`,
    );
    log(`results written to ${output}`);
  }
};

try {
  await main();
} catch (error) {
  // After Ctrl-C, wrk and the servers die with the terminal's SIGINT: that is no failure.
  if (!cleaning) process.stderr.write(`benchmark failed: ${(error as Error).stack ?? error}\n`);
  process.exitCode = 1;
} finally {
  await cleanUp();
}
