import type { AttemptOutcome } from './delivery-policy';
import type { WebhookEvent } from './webhook.model';

/**
 * Sends one attempt of one event to one endpoint: a POST of the event's body, signed at the
 * attempt's time with every secret given (see signature.ts). It never throws: what went wrong
 * is in the outcome. The stores schedule attempts; this only makes one
 * (http-webhook-sender.ts over the fast path's HTTP/1.1 client, checking every address it
 * connects to).
 */
export abstract class WebhookSender {
  /**
   * `signal` aborts the attempt (a graceful stop): the outcome is then an error `aborted`.
   * `lane` names the endpoint: a sender that queues attempts itself (handOverLimit) keeps at
   * most WEBHOOK_MAX_IN_FLIGHT of a lane's on the wire.
   */
  abstract send(
    url: string,
    event: WebhookEvent,
    secrets: readonly string[],
    signal?: AbortSignal,
    lane?: string,
  ): Promise<AttemptOutcome>;

  /**
   * How many attempts per endpoint a caller may have handed over at once, given
   * WEBHOOK_MAX_IN_FLIGHT and how long the endpoint's recent attempts took (`attemptMs`, null
   * before the first): that many for a sender that starts each attempt when asked; more for
   * one that queues them and keeps the cap on the wire itself (ThreadedWebhookSender).
   */
  handOverLimit(maxInFlight: number, _attemptMs: number | null): number {
    return maxInFlight;
  }

  /**
   * The endpoint `lane` changed its url or its secrets: attempts handed over but not yet on the
   * wire end at once as `recalled`, to be handed over again as the endpoint is now (those on
   * the wire go on). A sender that starts each attempt when asked holds none.
   */
  recall(_lane: string): void {}

  /** Closes kept-alive connections. */
  abstract close(): void;
}
