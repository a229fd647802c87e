import { execFileSync } from 'node:child_process';
import { availableParallelism } from 'node:os';

/**
 * Pinning a single-process server to one core and the load generator (this process) to
 * another, so that neither takes CPU from the other: unpinned, the two share both cores as the
 * scheduler pleases, and the server's share, so its throughput, moves by ±10% between two
 * starts of the same build measured side by side. Pinned, the same comparison agrees within
 * about 2%. Needs taskset (util-linux) and at least two cores; without either, nothing is
 * pinned.
 */
export interface CpuPinning {
  /** The command and its arguments that start `command args` on the server's core. */
  wrap(command: string, args: string[]): [string, string[]];
  /** Gives this process back every core. */
  release(): void;
}

const LOAD_CORE = 0;
const SERVER_CORE = 1;

function setAffinity(cores: string): void {
  // -a: every thread of this process (libuv's pool, V8's helpers) too.
  execFileSync('taskset', ['-a', '-p', '-c', cores, String(process.pid)], { stdio: 'ignore' });
}

/** Pins this process to the load generator's core; null when it cannot. */
export function pinLoadGenerator(): CpuPinning | null {
  const cores = availableParallelism();
  if (cores < 2) {
    return null;
  }
  try {
    setAffinity(String(LOAD_CORE));
  } catch {
    return null; // no taskset here
  }
  return {
    wrap: (command, args) => ['taskset', ['-c', String(SERVER_CORE), command, ...args]],
    release: () => setAffinity(`0-${cores - 1}`),
  };
}
