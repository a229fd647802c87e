import { parentPort, workerData } from 'node:worker_threads';
import type { AttemptOutcome } from '../delivery-policy';
import { HttpWebhookSender } from '../http-webhook-sender';
import type { WebhookEvent } from '../webhook.model';
import {
  RECALLED,
  type AttemptEnd,
  type AttemptOrder,
  type AttemptThreadOptions,
  type ToThread,
} from './attempt-protocol';

/**
 * The webhook attempts of an in-memory store, in a thread of their own (see
 * threaded-webhook-sender.ts for why). Each lane (an endpoint) has a queue of the attempts
 * handed over and at most `maxInFlight` of them on the wire; an attempt's time, signature and
 * timeout start when it goes on the wire. What ended is sent back once per turn.
 */

interface Lane {
  queue: AttemptOrder[];
  head: number;
  inFlight: number;
}

const options = workerData as AttemptThreadOptions;
const port = parentPort;
if (!port) {
  throw new Error('attempt-thread.ts runs as a worker thread');
}
const sender = new HttpWebhookSender({
  timeoutMs: options.timeoutMs,
  allowPrivateNetworks: options.allowPrivateNetworks,
});
const lanes = new Map<string, Lane>();
/** Attempts on the wire, by token. */
const onWire = new Map<number, AbortController>();
/** Tokens queued in a lane, not yet on the wire. */
const queued = new Set<number>();
/** Queued tokens aborted: they end as aborted when their turn comes. */
const abortedQueued = new Set<number>();
let ends: AttemptEnd[] = [];
/** How long ends gather before they are sent back (ms): the lag it adds is at most this. */
const FLUSH_EVERY_MS = 2;
let flushScheduled = false;

const ABORTED = (): AttemptOutcome => ({
  ok: false,
  statusCode: null,
  durationMs: 0,
  error: 'aborted',
});

function ended(token: number, outcome: AttemptOutcome): void {
  ends.push([token, outcome]);
  if (!flushScheduled) {
    flushScheduled = true;
    // Gathered for a moment: a message per answer would wake the store's thread as often.
    setTimeout(flush, FLUSH_EVERY_MS);
  }
}

function flush(): void {
  flushScheduled = false;
  const batch = ends;
  ends = [];
  port!.postMessage({ ends: batch });
}

function pump(name: string, lane: Lane): void {
  while (lane.inFlight < options.maxInFlight && lane.head < lane.queue.length) {
    const order = lane.queue[lane.head++];
    const [token, , url, id, body, secrets] = order;
    queued.delete(token);
    if (abortedQueued.delete(token)) {
      ended(token, ABORTED());
      continue;
    }
    lane.inFlight++;
    const controller = new AbortController();
    onWire.set(token, controller);
    const startedAt = Date.now();
    const event = { id, body } as WebhookEvent;
    void sender.send(url, event, secrets, controller.signal).then((outcome) => {
      onWire.delete(token);
      lane.inFlight--;
      outcome.startedAt = startedAt;
      ended(token, outcome);
      pump(name, lane);
    });
  }
  if (lane.head === lane.queue.length) {
    lane.queue = [];
    lane.head = 0;
    if (lane.inFlight === 0) {
      lanes.delete(name);
    }
  } else if (lane.head > 1024) {
    lane.queue = lane.queue.slice(lane.head);
    lane.head = 0;
  }
}

/** Ends every attempt queued in a lane, not on the wire, as recalled (or aborted, if it was). */
function recall(name: string): void {
  const lane = lanes.get(name);
  if (!lane) {
    return;
  }
  for (let i = lane.head; i < lane.queue.length; i++) {
    const token = lane.queue[i][0];
    queued.delete(token);
    ended(token, abortedQueued.delete(token) ? ABORTED() : RECALLED());
  }
  lane.queue = [];
  lane.head = 0;
  if (lane.inFlight === 0) {
    lanes.delete(name);
  }
}

port.on('message', ({ recalls, attempts, aborts }: ToThread) => {
  // First: an order in this message was handed over after the change that recalls.
  for (const name of recalls) {
    recall(name);
  }
  const touched = new Set<string>();
  for (const order of attempts) {
    const name = order[1];
    let lane = lanes.get(name);
    if (!lane) {
      lane = { queue: [], head: 0, inFlight: 0 };
      lanes.set(name, lane);
    }
    lane.queue.push(order);
    queued.add(order[0]);
    touched.add(name);
  }
  // After the orders: one may be aborted in the message that brings it. An abort of a token
  // neither on the wire nor queued crossed its end: nothing to do.
  for (const token of aborts) {
    const controller = onWire.get(token);
    if (controller) {
      controller.abort();
    } else if (queued.has(token)) {
      abortedQueued.add(token);
    }
  }
  for (const name of touched) {
    pump(name, lanes.get(name)!);
  }
});
