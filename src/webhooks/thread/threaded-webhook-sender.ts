import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { AttemptOutcome } from '../delivery-policy';
import type { WebhookEvent } from '../webhook.model';
import { WebhookSender } from '../webhook-sender';
import {
  RECALLED,
  type AttemptOrder,
  type AttemptThreadOptions,
  type FromThread,
  type ToThread,
} from './attempt-protocol';

/** How long orders gather before they go to the thread (ms): the lag it adds is at most this. */
const FLUSH_EVERY_MS = 2;

/**
 * How long the attempts the store hands over for an endpoint may take the thread to send, at
 * the endpoint's recent attempt time (ms). The thread's queue must outlast the store's turn on
 * a busy loop (with 16 x WEBHOOK_MAX_IN_FLIGHT, about 10 ms of attempts, it ran dry under
 * load and the deliveries fell behind the posts: docs/performance.md); and what is queued there
 * goes out as it was handed over, so it is kept short in time, not in number.
 */
const HAND_OVER_MS = 100;
/** The most handed over, in units of WEBHOOK_MAX_IN_FLIGHT. */
const MAX_HAND_OVER_FACTOR = 128;
/** What is handed over before an endpoint's first attempt is timed, in the same units. */
const FIRST_HAND_OVER_FACTOR = 16;

interface Outstanding {
  resolve: (outcome: AttemptOutcome) => void;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

/**
 * A WebhookSender whose attempts run in a worker thread (attempt-thread.ts, HttpWebhookSender
 * there). The in-memory store's process also applies every write: in a single process it serves
 * the HTTP routes too, and an answer to an attempt is only seen once per turn of that busy
 * event loop, so with WEBHOOK_MAX_IN_FLIGHT attempts per endpoint the deliveries fall behind
 * the posts. The thread's loop does nothing else: it sees each answer at once and starts the
 * next attempt, keeping at most WEBHOOK_MAX_IN_FLIGHT per endpoint on the wire, while the store
 * hands it about HAND_OVER_MS of attempts ahead (handOverLimit).
 *
 * Every decision (what is due, retries, the log, disabling) stays with the store: the thread
 * only makes attempts. Orders and ends cross in one message per turn each way. If the thread
 * dies, every attempt it held ends as an error (retried on the schedule) and the next attempt
 * starts a new thread.
 */
export class ThreadedWebhookSender extends WebhookSender {
  private worker: Worker | null = null;
  private nextToken = 1;
  private readonly outstanding = new Map<number, Outstanding>();
  private orders: AttemptOrder[] = [];
  private aborts: number[] = [];
  private recalls: string[] = [];
  private flushScheduled = false;
  private closed = false;

  constructor(private readonly options: AttemptThreadOptions) {
    super();
  }

  override handOverLimit(maxInFlight: number, attemptMs: number | null): number {
    if (attemptMs === null) {
      return maxInFlight * FIRST_HAND_OVER_FACTOR;
    }
    const factor = Math.ceil(
      HAND_OVER_MS / Math.max(attemptMs, HAND_OVER_MS / MAX_HAND_OVER_FACTOR),
    );
    return maxInFlight * Math.max(1, factor);
  }

  send(
    url: string,
    event: WebhookEvent,
    secrets: readonly string[],
    signal?: AbortSignal,
    lane = url,
  ): Promise<AttemptOutcome> {
    if (signal?.aborted || this.closed) {
      return Promise.resolve(stopped('aborted'));
    }
    const token = this.nextToken++;
    return new Promise<AttemptOutcome>((resolve) => {
      const entry: Outstanding = { resolve, signal, onAbort: undefined };
      if (signal) {
        entry.onAbort = () => {
          this.aborts.push(token);
          this.scheduleFlush();
        };
        signal.addEventListener('abort', entry.onAbort, { once: true });
      }
      this.outstanding.set(token, entry);
      this.orders.push([token, lane, url, event.id, event.body, [...secrets]]);
      this.scheduleFlush();
    });
  }

  /**
   * Ends the lane's attempts not yet on the wire as recalled: those still here at once, those
   * queued in the thread when it reads the recall (before any order that comes with it).
   */
  override recall(lane: string): void {
    const kept: AttemptOrder[] = [];
    for (const order of this.orders) {
      if (order[1] === lane) {
        this.end(order[0], RECALLED());
      } else {
        kept.push(order);
      }
    }
    this.orders = kept;
    if (this.worker && !this.closed) {
      this.recalls.push(lane);
      this.scheduleFlush();
    }
  }

  close(): void {
    this.closed = true;
    const worker = this.worker;
    this.worker = null;
    this.endAll('aborted');
    void worker?.terminate();
  }

  /**
   * One message per FLUSH_EVERY_MS at most, with everything ordered and aborted meanwhile:
   * each message wakes the thread, and a wake per post costs more than the attempt.
   */
  private scheduleFlush(): void {
    if (this.flushScheduled) {
      return;
    }
    this.flushScheduled = true;
    setTimeout(() => {
      this.flushScheduled = false;
      if (this.orders.length === 0 && this.aborts.length === 0 && this.recalls.length === 0) {
        return;
      }
      const message: ToThread = {
        attempts: this.orders,
        aborts: this.aborts,
        recalls: this.recalls,
      };
      this.orders = [];
      this.aborts = [];
      this.recalls = [];
      const worker = this.thread();
      worker.ref();
      worker.postMessage(message);
    }, FLUSH_EVERY_MS);
  }

  private thread(): Worker {
    if (this.worker) {
      return this.worker;
    }
    const worker = startAttemptThread(this.options);
    worker.on('message', ({ ends }: FromThread) => {
      for (const [token, outcome] of ends) {
        this.end(token, outcome);
      }
      if (this.outstanding.size === 0) {
        worker.unref();
      }
    });
    const died = () => {
      if (this.worker === worker) {
        this.worker = null;
        this.endAll('sender thread stopped');
      }
    };
    worker.on('error', died);
    worker.on('exit', died);
    this.worker = worker;
    return worker;
  }

  private end(token: number, outcome: AttemptOutcome): void {
    const entry = this.outstanding.get(token);
    if (!entry) {
      return;
    }
    this.outstanding.delete(token);
    if (entry.onAbort) {
      entry.signal?.removeEventListener('abort', entry.onAbort);
    }
    entry.resolve(outcome);
  }

  private endAll(error: string): void {
    for (const token of [...this.outstanding.keys()]) {
      this.end(token, stopped(error));
    }
    this.orders = [];
    this.aborts = [];
    this.recalls = [];
  }
}

function stopped(error: string): AttemptOutcome {
  return { ok: false, statusCode: null, durationMs: 0, error };
}

/**
 * Starts attempt-thread: the compiled .js beside this file, or, when this file is the
 * TypeScript source (jest runs src through ts-jest), the .ts through the compiler's
 * transpileModule, registered for .ts files in the thread.
 */
function startAttemptThread(options: AttemptThreadOptions): Worker {
  const compiled = join(__dirname, 'attempt-thread.js');
  if (existsSync(compiled)) {
    return new Worker(compiled, { workerData: options });
  }
  const source = join(__dirname, 'attempt-thread.ts');
  const loader = `
    const fs = require('node:fs');
    const ts = require('typescript');
    require.extensions['.ts'] = (module, filename) => {
      const { outputText } = ts.transpileModule(fs.readFileSync(filename, 'utf8'), {
        compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
        fileName: filename,
      });
      module._compile(outputText, filename);
    };
    require(${JSON.stringify(source)});
  `;
  return new Worker(loader, { eval: true, workerData: options });
}
