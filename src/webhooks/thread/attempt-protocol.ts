import type { AttemptOutcome } from '../delivery-policy';

/**
 * The messages between ThreadedWebhookSender (the store's thread) and attempt-thread.ts. Each
 * side sends at most one message per turn of its event loop, holding everything that turn
 * produced: a message per attempt would cost more than the attempt.
 */

/** What the thread is started with (its workerData). */
export interface AttemptThreadOptions {
  timeoutMs: number;
  allowPrivateNetworks: boolean;
  /** Attempts on the wire per lane (endpoint) at once: WEBHOOK_MAX_IN_FLIGHT. */
  maxInFlight: number;
}

/** One attempt handed over: [token, lane, url, event id, body, secrets]. */
export type AttemptOrder = [number, string, string, string, string, string[]];

export interface ToThread {
  /** Lanes whose queued attempts end as recalled, before this message's attempts are queued. */
  recalls: string[];
  attempts: AttemptOrder[];
  /** Tokens of attempts to abort, queued or on the wire. */
  aborts: number[];
}

/** An attempt handed back unsent: the store queues it again as its endpoint is now. */
export const RECALLED = (): AttemptOutcome => ({
  ok: false,
  statusCode: null,
  durationMs: 0,
  error: 'recalled',
  recalled: true,
});

/** One attempt's end: the token and its outcome (`startedAt`: when it went on the wire). */
export type AttemptEnd = [number, AttemptOutcome];

export interface FromThread {
  ends: AttemptEnd[];
}
