import type { AttemptOutcome } from './delivery-policy';
import type { WebhookEvent } from './webhook.model';

/**
 * Sends one attempt of one event to one endpoint: a POST of the event's body, signed at the
 * attempt's time with every secret given (see signature.ts). It never throws: what went wrong
 * is in the outcome. The stores schedule attempts; this only makes one
 * (http-webhook-sender.ts over node:http, checking every address it connects to).
 */
export abstract class WebhookSender {
  /** `signal` aborts the attempt (a graceful stop): the outcome is then an error `aborted`. */
  abstract send(
    url: string,
    event: WebhookEvent,
    secrets: readonly string[],
    signal?: AbortSignal,
  ): Promise<AttemptOutcome>;

  /** Closes kept-alive connections. */
  abstract close(): void;
}
