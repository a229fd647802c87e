import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

function sysconf(name: string, fallback: number): number {
  try {
    const value = Number(execFileSync('getconf', [name], { encoding: 'utf8' }).trim());
    return Number.isFinite(value) && value > 0 ? value : fallback;
  } catch {
    return fallback;
  }
}

export const CLOCK_TICKS_PER_SECOND = sysconf('CLK_TCK', 100);
const PAGE_SIZE = sysconf('PAGESIZE', 4096);

interface ProcStat {
  pid: number;
  state: string;
  ppid: number;
  pgrp: number;
  /** utime + stime of every thread, in clock ticks. */
  cpuTicks: number;
  rssBytes: number;
}

/** One line of /proc/<pid>/stat; null when the process is gone. */
function readStat(pid: number): ProcStat | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // The command name (field 2) may hold spaces and parentheses: split after the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state): ppid is field 4, pgrp 5, utime 14, stime 15, rss 24 (pages).
  return {
    pid,
    state: fields[0],
    ppid: Number(fields[1]),
    pgrp: Number(fields[2]),
    cpuTicks: Number(fields[11]) + Number(fields[12]),
    rssBytes: Number(fields[21]) * PAGE_SIZE,
  };
}

function allProcesses(): ProcStat[] {
  const stats: ProcStat[] = [];
  for (const entry of readdirSync('/proc')) {
    const stat = /^\d+$/.test(entry) ? readStat(Number(entry)) : null;
    if (stat && stat.state !== 'Z') {
      stats.push(stat);
    }
  }
  return stats;
}

/** The process and all its descendants that are alive (not zombies) now. */
export function processTree(rootPid: number): number[] {
  const children = new Map<number, number[]>();
  const alive = new Set<number>();
  for (const stat of allProcesses()) {
    alive.add(stat.pid);
    children.set(stat.ppid, [...(children.get(stat.ppid) ?? []), stat.pid]);
  }
  const tree: number[] = [];
  const queue = [rootPid];
  while (queue.length > 0) {
    const pid = queue.shift() as number;
    if (alive.has(pid)) {
      tree.push(pid);
      queue.push(...(children.get(pid) ?? []));
    }
  }
  return tree;
}

/**
 * Whether any process of the group still runs. Zombies do not count: orphaned cluster
 * workers are reaped by pid 1 whenever it gets to it, which can take a second.
 */
export function groupRunning(pgid: number): boolean {
  return allProcesses().some((stat) => stat.pgrp === pgid);
}

/** CPU seconds (user + system) used so far by each process, by pid. */
export function cpuSnapshot(pids: number[]): Map<number, number> {
  const snapshot = new Map<number, number>();
  for (const pid of pids) {
    const stat = readStat(pid);
    if (stat) {
      snapshot.set(pid, stat.cpuTicks / CLOCK_TICKS_PER_SECOND);
    }
  }
  return snapshot;
}

/** CPU seconds used between two snapshots by the given processes (all of them by default). */
export function cpuBetween(
  before: Map<number, number>,
  after: Map<number, number>,
  pids: number[] = [...after.keys()],
): number {
  let seconds = 0;
  for (const pid of pids) {
    const end = after.get(pid);
    if (end !== undefined) {
      seconds += end - (before.get(pid) ?? 0);
    }
  }
  return seconds;
}

export function rssOfTree(rootPid: number): number {
  return processTree(rootPid).reduce((sum, pid) => sum + (readStat(pid)?.rssBytes ?? 0), 0);
}

/** Samples the summed RSS of a process tree until stopped; returns the peak. */
export function startRssSampler(rootPid: number, intervalMs = 100): { stop(): number } {
  let peak = rssOfTree(rootPid);
  const timer = setInterval(() => {
    peak = Math.max(peak, rssOfTree(rootPid));
  }, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      return Math.max(peak, rssOfTree(rootPid));
    },
  };
}
