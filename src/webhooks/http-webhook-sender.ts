import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import { isIP, type LookupFunction } from 'node:net';
import { performance } from 'node:perf_hooks';
import { Http1Answer, Http1Client, Http1Request } from '../http/fast-path/http1-client';
import { addressRefusal } from './address-policy';
import { retryAfterMs, type AttemptOutcome } from './delivery-policy';
import { signedHeaders } from './signature';
import type { WebhookEvent } from './webhook.model';
import { WebhookSender } from './webhook-sender';

export interface HttpWebhookSenderOptions {
  /** The whole attempt, from connecting to the answer's last byte (WEBHOOK_TIMEOUT_MS). */
  timeoutMs: number;
  /** WEBHOOK_ALLOW_PRIVATE_NETWORKS: loopback and private addresses may be delivered to. */
  allowPrivateNetworks: boolean;
  /** Resolves hostnames (node:dns lookup by default); specs inject one to test rebinding. */
  lookup?: LookupFunction;
  /** The clock for signatures and Retry-After dates (ms). */
  now?: () => number;
}

/** How much of an answer is read: receivers' bodies are not kept, so a big one is cut off. */
const MAX_RESPONSE_BYTES = 1024;
/** Per host and port: deliveries to one endpoint are few at a time, this only stops a runaway. */
const MAX_SOCKETS = 256;

/** A connection refused by the address policy (its message is the attempt's error). */
class AddressRefusedError extends Error {
  constructor(reason: string) {
    super(`address refused: ${reason}`);
  }
}

/**
 * WebhookSender over HTTP/1.1 and HTTPS, with the fast path's client (http1-client.ts, held
 * equal to node:http's by its spec; a cheaper attempt than node:http's, docs/performance.md).
 * Every address a connection goes to is checked with addressRefusal when connecting: the
 * client's `lookup` resolves the endpoint's hostname and refuses the connection if any
 * address it answers is refused (so a name that resolved to a public address when the endpoint
 * was made, and to a private one now, is caught), and a numeric host, which node connects to
 * without a lookup, is checked before the request.
 *
 * No proxy is used: connections are made with node:net and node:tls directly, so HTTP_PROXY,
 * HTTPS_PROXY and NODE_USE_ENV_PROXY (which only set up node's global agents) are ignored; a
 * proxy would also connect to addresses this class never sees.
 */
export class HttpWebhookSender extends WebhookSender {
  private readonly timeoutMs: number;
  private readonly allowPrivate: boolean;
  private readonly resolve: LookupFunction;
  private readonly now: () => number;
  private readonly client: Http1Client;

  constructor(options: HttpWebhookSenderOptions) {
    super();
    this.timeoutMs = options.timeoutMs;
    this.allowPrivate = options.allowPrivateNetworks;
    this.resolve = options.lookup ?? (dnsLookup as LookupFunction);
    this.now = options.now ?? Date.now;
    const lookup: LookupFunction = (hostname, lookupOptions, callback) =>
      this.checkedLookup(hostname, lookupOptions, callback);
    this.client = new Http1Client({
      lookup,
      maxSockets: MAX_SOCKETS,
      maxBodyBytes: MAX_RESPONSE_BYTES,
    });
  }

  send(
    url: string,
    event: WebhookEvent,
    secrets: readonly string[],
    signal?: AbortSignal,
  ): Promise<AttemptOutcome> {
    const started = performance.now();
    const failed = (error: string, statusCode: number | null = null): AttemptOutcome => ({
      ok: false,
      statusCode,
      durationMs: performance.now() - started,
      error,
    });
    if (signal?.aborted) {
      return Promise.resolve(failed('aborted'));
    }
    let target: URL;
    try {
      target = new URL(url);
    } catch {
      return Promise.resolve(failed('invalid url'));
    }
    const secure = target.protocol === 'https:';
    if (!secure && target.protocol !== 'http:') {
      return Promise.resolve(failed('unsupported protocol'));
    }
    // The URL keeps an IPv6 host in brackets; node wants it bare.
    const host = target.hostname.replace(/^\[(.*)\]$/, '$1');
    if (isIP(host) !== 0) {
      // Node connects to a numeric host without calling lookup: check it here.
      const reason = addressRefusal(host, this.allowPrivate);
      if (reason) {
        return Promise.resolve(failed(new AddressRefusedError(reason).message));
      }
    }
    let signed: ReturnType<typeof signedHeaders>;
    try {
      signed = signedHeaders(secrets, event.id, Math.floor(this.now() / 1000), event.body);
    } catch {
      // The signing errors name no secret, but say nothing of them anyway.
      return Promise.resolve(failed('signing failed'));
    }
    const origin = { secure, host, port: Number(target.port) || (secure ? 443 : 80) };
    const headers: [string, string][] = [
      ['webhook-id', signed['webhook-id']],
      ['webhook-timestamp', signed['webhook-timestamp']],
      ['webhook-signature', signed['webhook-signature']],
    ];

    return new Promise<AttemptOutcome>((resolve) => {
      let done = false;
      const finish = (outcome: AttemptOutcome) => {
        if (done) {
          return;
        }
        done = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        resolve(outcome);
      };
      const stop = (reason: string) => {
        finish(failed(reason, request.statusCode));
        request.cancel();
      };
      const timer = setTimeout(() => stop('timeout'), this.timeoutMs);
      const onAbort = () => stop('aborted');
      signal?.addEventListener('abort', onAbort, { once: true });
      const request: Http1Request = this.client.post(
        origin,
        `${target.pathname}${target.search}`,
        headers,
        event.body,
        (error, answer) =>
          finish(
            error ? failed(errorText(error), request.statusCode) : this.answered(answer!, started),
          ),
      );
    });
  }

  close(): void {
    this.client.close();
  }

  /** The outcome of an answer received in time. */
  private answered({ statusCode, retryAfter }: Http1Answer, started: number): AttemptOutcome {
    const ok = statusCode >= 200 && statusCode < 300;
    const outcome: AttemptOutcome = {
      ok,
      statusCode,
      durationMs: performance.now() - started,
      // A redirect is not followed: it is a failure like any other.
      error: ok ? null : `status ${statusCode}`,
    };
    if (statusCode === 429 || statusCode === 503) {
      const delay = retryAfterMs(retryAfter, this.now());
      if (delay !== undefined) {
        outcome.retryAfterMs = delay;
      }
    }
    return outcome;
  }

  /**
   * The client's lookup: resolves every address of `hostname` and refuses the connection if any
   * is refused, so that neither the first answer nor one tried later (node's autoSelectFamily
   * tries several) can be a private one. Answers in the form asked: a list with `all`, else the
   * first address.
   */
  private checkedLookup(
    hostname: string,
    options: LookupOptions,
    callback: Parameters<LookupFunction>[2],
  ): void {
    this.resolve(hostname, { ...options, all: true }, (err, answer, family) => {
      if (err) {
        callback(err, '');
        return;
      }
      const addresses: LookupAddress[] = Array.isArray(answer)
        ? answer
        : [{ address: answer, family: family ?? isIP(answer) }];
      if (addresses.length === 0) {
        callback(Object.assign(new Error(`no address for ${hostname}`), { code: 'ENOTFOUND' }), '');
        return;
      }
      for (const { address } of addresses) {
        const reason = addressRefusal(address, this.allowPrivate);
        if (reason) {
          callback(new AddressRefusedError(reason), '');
          return;
        }
      }
      if (options.all) {
        callback(null, addresses);
      } else {
        callback(null, addresses[0].address, addresses[0].family);
      }
    });
  }
}

/** An attempt's error: ours as they are, a system error by its code (never a secret). */
function errorText(err: unknown): string {
  if (err instanceof AddressRefusedError) {
    return err.message;
  }
  // Read by shape, not instanceof: node's errors may come from another realm (jest's vm).
  const { code, message } = (err ?? {}) as { code?: unknown; message?: unknown };
  if (typeof code === 'string') {
    return code;
  }
  return typeof message === 'string' ? message : String(err);
}
