import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import { lookup } from 'node:dns';
import { join } from 'node:path';
import type { Reply } from './chat-core';

/**
 * The least a server can do to deliver webhooks, for configuration A in the webhooks
 * benchmark: what delivering costs a server whose every other cost is the runtime's floor, on
 * the same cores as the load and the receivers. Each message posted is queued (before the
 * answer) as one event per endpoint and sent as a signed POST (Standard Webhooks headers, the
 * server's body shape), at most 8 at once per endpoint, each given up after
 * WEBHOOK_TIMEOUT_MS. Nothing else: no retry, no log, no durability, no filter, no metrics.
 *
 * The attempts go through the server's own HTTP/1.1 client (src/http/fast-path/http1-client.ts,
 * loaded from the build), so that the gap between A and B is what the server does around an
 * attempt, not the client.
 */

interface Http1Request {
  cancel(): void;
}
interface Http1Client {
  post(
    origin: { secure: boolean; host: string; port: number },
    path: string,
    headers: [string, string][],
    body: string,
    done: (error: Error | null) => void,
  ): Http1Request;
}

// The build's client: bench/dist/baselines -> dist/http/fast-path.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { Http1Client: Client } = require(
  join(__dirname, '../../../dist/http/fast-path/http1-client.js'),
) as { Http1Client: new (options: object) => Http1Client };

/** As the server's WEBHOOK_MAX_IN_FLIGHT (default 8). */
const MAX_IN_FLIGHT = Number(process.env.WEBHOOK_MAX_IN_FLIGHT ?? 8);
/**
 * Events queued per endpoint past which new ones are dropped (the slow endpoint's backlog), as
 * the server's WEBHOOK_MAX_PENDING; an endpoint that dropped one lists as disabled (backlog).
 */
const MAX_QUEUED = Number(process.env.WEBHOOK_MAX_PENDING ?? 100_000);
const TIMEOUT_MS = Number(process.env.WEBHOOK_TIMEOUT_MS ?? 15_000);

interface Endpoint {
  id: string;
  origin: { secure: boolean; host: string; port: number };
  path: string;
  key: Buffer;
  queue: { id: string; body: string }[];
  head: number;
  inFlight: number;
  url: string;
  dropped: boolean;
}

export class WebhookCore {
  private readonly endpoints: Endpoint[] = [];
  private readonly client = new Client({ lookup, maxSockets: 256, maxBodyBytes: 1024 });

  /** POST /api/webhooks `{ url }`: 201 with the endpoint and its secret. */
  create(body: unknown): Reply {
    const url = (body as { url?: unknown } | undefined)?.url;
    let target: URL;
    try {
      target = new URL(String(url));
    } catch {
      return { status: 400, body: { code: 'validation_failed' }, problem: true };
    }
    const key = randomBytes(32);
    const endpoint: Endpoint = {
      id: randomUUID(),
      origin: {
        secure: target.protocol === 'https:',
        host: target.hostname,
        port: Number(target.port) || (target.protocol === 'https:' ? 443 : 80),
      },
      path: `${target.pathname}${target.search}`,
      key,
      queue: [],
      head: 0,
      inFlight: 0,
      url: String(url),
      dropped: false,
    };
    this.endpoints.push(endpoint);
    return {
      status: 201,
      body: { id: endpoint.id, url, secret: `whsec_${key.toString('base64')}` },
    };
  }

  /** GET /api/webhooks: each endpoint, disabled (backlog) once it dropped an event. */
  list(): Reply {
    return {
      status: 200,
      body: {
        webhooks: this.endpoints.map((endpoint) => ({
          id: endpoint.id,
          url: endpoint.url,
          status: endpoint.dropped ? 'disabled' : 'enabled',
          disabledReason: endpoint.dropped ? 'backlog' : null,
        })),
      },
    };
  }

  /** A message was posted (`message` as the post answered it): an event for every endpoint. */
  messageCreated(conversationId: string, message: { seq: number; createdAt: number }): void {
    if (this.endpoints.length === 0) {
      return;
    }
    const id = `evt_${conversationId.replace(/-/g, '')}_1_${message.seq}`;
    const body = JSON.stringify({
      id,
      type: 'message.created',
      timestamp: new Date(message.createdAt).toISOString(),
      data: { conversationId, seq: message.seq, change: message },
    });
    for (const endpoint of this.endpoints) {
      if (endpoint.queue.length - endpoint.head < MAX_QUEUED) {
        endpoint.queue.push({ id, body });
        this.pump(endpoint);
      } else {
        endpoint.dropped = true;
      }
    }
  }

  private pump(endpoint: Endpoint): void {
    while (endpoint.inFlight < MAX_IN_FLIGHT && endpoint.head < endpoint.queue.length) {
      const { id, body } = endpoint.queue[endpoint.head++];
      endpoint.inFlight++;
      const timestamp = Math.floor(Date.now() / 1000);
      const signature = createHmac('sha256', endpoint.key)
        .update(`${id}.${timestamp}.${body}`)
        .digest('base64');
      let ended = false;
      const end = () => {
        if (!ended) {
          ended = true;
          clearTimeout(timer);
          endpoint.inFlight--;
          this.pump(endpoint);
        }
      };
      const request = this.client.post(
        endpoint.origin,
        endpoint.path,
        [
          ['webhook-id', id],
          ['webhook-timestamp', String(timestamp)],
          ['webhook-signature', `v1,${signature}`],
        ],
        body,
        end,
      );
      const timer = setTimeout(() => {
        request.cancel();
        end();
      }, TIMEOUT_MS);
    }
    if (endpoint.head > 1024 && endpoint.head * 2 > endpoint.queue.length) {
      endpoint.queue = endpoint.queue.slice(endpoint.head);
      endpoint.head = 0;
    }
  }
}
