/**
 * CPU accounting from /proc, to tell how much CPU the servers spent per request and how much
 * of the machine something else (other jobs, the hypervisor) took during a load run. Those two
 * figures vary far less than req/s on a shared 2-core machine.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const ticksPerSecond =
  Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout?.trim()) || 100;
const ticksToMs = (ticks: number) => (ticks * 1000) / ticksPerSecond;

/** CPU time of a process (user + system), and of its reaped children, in ms. */
export const processCpu = (pid: number | 'self') => {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after "(comm)": state is field 3, utime 14, stime 15, cutime 16, cstime 17.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const field = (number: number) => Number(fields[number - 3] ?? 0);
  return {
    ownMs: ticksToMs(field(14) + field(15)),
    childrenMs: ticksToMs(field(16) + field(17)),
  };
};

/** Machine-wide CPU time from /proc/stat, in ms summed over all CPUs. */
export const systemCpu = () => {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = line
    .trim()
    .split(/\s+/)
    .slice(1)
    .map(Number);
  // Interrupt time is listed apart here but charged to processes in /proc/<pid>/stat.
  return { busyMs: ticksToMs(user + nice + system + irq + softirq), stealMs: ticksToMs(steal) };
};

/** CPU figures of one load run. */
export interface CpuUsage {
  wallMs: number;
  /** CPU ms of each watched server process, by name. */
  serversMs: Record<string, number>;
  /** CPU ms of the load generator (wrk), from this process's reaped-children time. */
  wrkMs: number;
  /** CPU ms of the benchmark process itself (RSS sampling, bookkeeping). */
  benchMs: number;
  /**
   * Busy CPU of everything else, as a share of the machine (0..1): other jobs on the host.
   * Approximate: kernel work is charged to whichever process was running.
   */
  otherShare: number;
  /** Time the hypervisor took from this VM, as a share of the machine (0..1). */
  stealShare: number;
}

/** Snapshots before a run; call the returned function after the run (after wrk was reaped). */
export const measureCpu = (servers: { name: string; pid: number }[], cpuCount: number) => {
  const startedAt = performance.now();
  const systemBefore = systemCpu();
  const selfBefore = processCpu('self');
  const serversBefore = servers.map((server) => processCpu(server.pid).ownMs);
  return (): CpuUsage => {
    const wallMs = performance.now() - startedAt;
    const systemAfter = systemCpu();
    const selfAfter = processCpu('self');
    const serversMs: Record<string, number> = {};
    let serversTotal = 0;
    servers.forEach((server, index) => {
      const used = processCpu(server.pid).ownMs - (serversBefore[index] ?? 0);
      serversMs[server.name] = used;
      serversTotal += used;
    });
    const wrkMs = selfAfter.childrenMs - selfBefore.childrenMs;
    const benchMs = selfAfter.ownMs - selfBefore.ownMs;
    const capacityMs = wallMs * cpuCount;
    const other = systemAfter.busyMs - systemBefore.busyMs - serversTotal - wrkMs - benchMs;
    return {
      wallMs,
      serversMs,
      wrkMs,
      benchMs,
      otherShare: Math.max(0, other / capacityMs),
      stealShare: (systemAfter.stealMs - systemBefore.stealMs) / capacityMs,
    };
  };
};
