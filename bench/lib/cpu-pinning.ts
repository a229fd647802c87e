import { execFileSync } from 'node:child_process';
import { availableParallelism } from 'node:os';

/**
 * Pinning a single-process server to one core and the load generator (this process) to
 * another, so that neither takes CPU from the other: unpinned, the two share both cores as the
 * scheduler pleases, and three starts of one build measured side by side differed by up to
 * 19% in CPU per request; pinned, four agreed within 2.5% (see bench/README.md). Needs
 * taskset (util-linux) and at least two cores; without either, nothing is pinned.
 */
export interface CpuPinning {
  /** The command and its arguments that start `command args` on the server's core. */
  wrap(command: string, args: string[]): [string, string[]];
  /** Gives this process back the cores it had. */
  release(): void;
}

const LOAD_CORE = 0;
const SERVER_CORE = 1;

function setAffinity(cores: string): void {
  // -a: every thread of this process (libuv's pool, V8's helpers) too.
  execFileSync('taskset', ['-a', '-p', '-c', cores, String(process.pid)], { stdio: 'ignore' });
}

/** This process's cores as taskset lists them ("pid 1's current affinity list: 0,1"). */
function currentAffinity(): string {
  const line = execFileSync('taskset', ['-p', '-c', String(process.pid)], { encoding: 'utf8' });
  return line.slice(line.lastIndexOf(':') + 1).trim();
}

/** Pins this process to the load generator's core; null when it cannot. */
export function pinLoadGenerator(): CpuPinning | null {
  const cores = availableParallelism();
  if (cores < 2) {
    return null;
  }
  let before: string;
  try {
    before = currentAffinity();
    setAffinity(String(LOAD_CORE));
  } catch {
    return null; // no taskset here
  }
  return {
    wrap: (command, args) => ['taskset', ['-c', String(SERVER_CORE), command, ...args]],
    release: () => setAffinity(before),
  };
}
