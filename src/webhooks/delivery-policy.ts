import { MAX_RETRY_AFTER_MS } from './webhook.model';

/**
 * What follows an attempt, the same in every store: the retry schedule (Svix's, ±20% jitter),
 * `410 Gone` disabling the endpoint, `Retry-After` on 429/503, and the `failing` disable.
 */

/** What one attempt came to (see WebhookSender.send). */
export interface AttemptOutcome {
  /** A 2xx answer. */
  ok: boolean;
  statusCode: number | null;
  durationMs: number;
  /** Null on success. */
  error: string | null;
  /** A 429 or 503's Retry-After, in ms, capped at an hour. */
  retryAfterMs?: number;
  /** When the attempt went on the wire (ms), if later than when it was asked for. */
  startedAt?: number;
  /**
   * Not made: handed back unsent because the endpoint's url or secrets changed
   * (WebhookSender.recall). Pending again, due as it was.
   */
  recalled?: true;
}

export type NextStep =
  | { kind: 'succeeded' }
  /** Try again after `delayMs`. */
  | { kind: 'retry'; delayMs: number }
  /** Every attempt used: the delivery failed. */
  | { kind: 'failed' }
  /** 410: the endpoint is disabled (`gone`) and the delivery failed. */
  | { kind: 'gone' };

/**
 * After attempt number `attempt` (1 for the first): `scheduleMs[attempt - 1]` ±20%, or longer
 * if the receiver asked (Retry-After). `random` is in [0, 1).
 */
export function nextStep(
  outcome: AttemptOutcome,
  attempt: number,
  scheduleMs: readonly number[],
  random: () => number = Math.random,
): NextStep {
  if (outcome.ok) {
    return { kind: 'succeeded' };
  }
  if (outcome.statusCode === 410) {
    return { kind: 'gone' };
  }
  if (attempt > scheduleMs.length) {
    return { kind: 'failed' };
  }
  const planned = Math.round(scheduleMs[attempt - 1] * (0.8 + 0.4 * random()));
  const asked = Math.min(outcome.retryAfterMs ?? 0, MAX_RETRY_AFTER_MS);
  return { kind: 'retry', delayMs: Math.max(planned, asked) };
}

/** How many attempts a delivery gets: the first, and one per delay of the schedule. */
export function attemptsAllowed(scheduleMs: readonly number[]): number {
  return scheduleMs.length + 1;
}

/**
 * At WEBHOOK_MAX_BYTES, the endpoint disabled for its backlog: of `held` (each enabled
 * endpoint's pending bytes), the one holding the most, `queueing` (the one whose event does not
 * fit) on a tie. When it is `queueing`, that endpoint's event is not queued.
 */
export function heaviestBacklog(held: ReadonlyMap<string, number>, queueing: string): string {
  let heaviest = queueing;
  let most = held.get(queueing) ?? 0;
  for (const [id, bytes] of held) {
    if (bytes > most) {
      heaviest = id;
      most = bytes;
    }
  }
  return heaviest;
}

/**
 * Whether a delivery that just failed for good disables its endpoint (`failing`): no 2xx since
 * `failingSince` for at least `disableAfterMs`.
 */
export function disablesForFailing(
  failingSince: number | null,
  now: number,
  disableAfterMs: number,
): boolean {
  return failingSince !== null && now - failingSince >= disableAfterMs;
}

/**
 * A Retry-After header's delay in ms (delta-seconds or an HTTP date), capped at an hour;
 * undefined when absent or unreadable.
 */
export function retryAfterMs(header: string | undefined, now: number): number | undefined {
  if (!header) {
    return undefined;
  }
  const text = header.trim();
  let ms: number;
  if (/^\d+$/.test(text)) {
    ms = Number(text) * 1000;
  } else {
    const date = Date.parse(text);
    if (Number.isNaN(date)) {
      return undefined;
    }
    ms = date - now;
  }
  return Math.max(0, Math.min(ms, MAX_RETRY_AFTER_MS));
}

/** What the stores report as they deliver (metrics and logs; see webhooks.module.ts). */
export interface DeliveryObserver {
  /** After every attempt; `step` is what followed it. */
  attempted(endpointId: string, outcome: AttemptOutcome, step: NextStep['kind']): void;
  /** An endpoint was disabled (gone, failing, backlog). */
  disabled(endpointId: string, reason: 'gone' | 'failing' | 'backlog'): void;
  /** Changes the reconcile pass found applied but no longer in the replay buffer. */
  lost(count: number): void;
}

/** An observer that reports nothing (the default in specs). */
export const SILENT_OBSERVER: DeliveryObserver = {
  attempted: () => undefined,
  disabled: () => undefined,
  lost: () => undefined,
};
