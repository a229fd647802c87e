import { Logger } from '@nestjs/common';
import cluster, { Worker } from 'node:cluster';
import { CONTROL_CHANNEL, ShutdownMessage } from './control';

export interface SupervisorOptions {
  workers: number;
  /** Every message a worker sends; the supervisor itself only watches lives and deaths. */
  onMessage(worker: Worker, message: unknown): void;
  /** How long workers get to drain on stop before they are killed. */
  graceMs: number;
  /** Called when workers keep crashing: the primary should stop and exit non-zero. */
  onCrashLoop(reason: string): void;
  /** Called each time a replacement for an exited worker is started. */
  onRestart?(): void;
}

const BACKOFF_START_MS = 100;
const BACKOFF_MAX_MS = 10_000;
const CRASH_WINDOW_MS = 30_000;
const CRASHES_TOLERATED = 5;
/** After killing the workers that did not drain, the longest the stop waits for their exit. */
const KILL_WAIT_MS = 2_000;

/** Sends to a worker that may be gone: a closed channel is not an error worth a crash. */
export function sendToWorker(worker: Worker, message: unknown): void {
  if (!worker.isConnected()) {
    return;
  }
  try {
    worker.send(message as object, undefined, () => undefined);
  } catch {
    // ERR_IPC_CHANNEL_CLOSED and friends: the worker went away while we answered.
  }
}

/**
 * Forks the workers, replaces any that die (with doubling backoff after crashes), gives up
 * when they keep crashing, and drains them on stop.
 */
export class WorkerSupervisor {
  private readonly logger = new Logger('Supervisor');
  private readonly crashes: number[] = [];
  private stopping: Promise<void> | null = null;

  constructor(private readonly options: SupervisorOptions) {}

  start(): void {
    // JSON costs the primary less than structured clone for the small messages that make up
    // nearly all traffic; long histories are split into small messages (see StoreHub).
    cluster.setupPrimary({ serialization: 'json' });
    cluster.on('message', (worker, message) => this.options.onMessage(worker, message));
    cluster.on('exit', (worker, code, signal) => this.onExit(worker, code, signal));
    for (let i = 0; i < this.options.workers; i++) {
      this.fork();
    }
  }

  /** Asks every worker to drain and exit; kills those still running after the grace period. */
  stop(): Promise<void> {
    this.stopping ??= new Promise<void>((resolve) => {
      // A worker whose process has exited is done, even while cluster.workers still lists it:
      // Node removes it only once its IPC channel has closed too, which may come after 'exit'.
      const remaining = () =>
        Object.values(cluster.workers ?? {}).filter(
          (worker): worker is Worker => worker !== undefined && !worker.isDead(),
        );
      const check = () => {
        if (remaining().length === 0) {
          clearTimeout(deadline);
          resolve();
        }
      };
      const deadline = setTimeout(() => {
        for (const worker of remaining()) {
          this.logger.warn(`Worker ${worker.id} did not drain in time: killing it`);
          worker.process.kill('SIGKILL');
        }
        // The stop goes on even if an exit is never reported: the primary must not hang.
        setTimeout(resolve, KILL_WAIT_MS);
      }, this.options.graceMs + 1_000);
      cluster.on('exit', check);
      const shutdown: ShutdownMessage = { ch: CONTROL_CHANNEL, cmd: 'shutdown' };
      remaining().forEach((worker) => sendToWorker(worker, shutdown));
      check();
    });
    return this.stopping;
  }

  private fork(): void {
    const worker = cluster.fork();
    worker.on('error', (error) => this.logger.warn(`Worker ${worker.id}: ${error.message}`));
  }

  private onExit(worker: Worker, code: number | null, signal: string | null): void {
    if (this.stopping) {
      return;
    }
    const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
    if (code === 0 && !signal) {
      // A graceful exit (SIGTERM sent to the worker alone) is a restart, not a crash.
      this.logger.log(`Worker ${worker.id} ${how}: starting a replacement`);
      this.replace(0);
      return;
    }
    const now = Date.now();
    this.crashes.push(now);
    while (this.crashes.length > 0 && this.crashes[0] < now - CRASH_WINDOW_MS) {
      this.crashes.shift();
    }
    if (this.crashes.length >= CRASHES_TOLERATED) {
      this.options.onCrashLoop(
        `workers crashed ${this.crashes.length} times within ${CRASH_WINDOW_MS / 1000} s (last: worker ${worker.id} ${how})`,
      );
      return;
    }
    const delay = Math.min(BACKOFF_START_MS * 2 ** (this.crashes.length - 1), BACKOFF_MAX_MS);
    this.logger.error(`Worker ${worker.id} ${how}: starting a replacement in ${delay} ms`);
    this.replace(delay);
  }

  private replace(delayMs: number): void {
    setTimeout(() => {
      if (!this.stopping) {
        this.fork();
        this.options.onRestart?.();
      }
    }, delayMs);
  }
}
