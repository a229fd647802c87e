import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';

/** One request a receiver got: its headers and exact body. */
export interface Received {
  id: string;
  timestamp: string;
  signature: string;
  body: string;
  /** The body parsed. */
  event: { id: string; type: string; timestamp: string; data: Record<string, unknown> };
  at: number;
}

/** What the receiver answers a request with (the default: 204 at once). */
export type Answer = (
  req: IncomingMessage,
  received: Received,
) =>
  | { status: number; headers?: Record<string, string>; delayMs?: number }
  | Promise<{ status: number; headers?: Record<string, string>; delayMs?: number }>;

/**
 * A webhook receiver on 127.0.0.1 as an integration would run one: it keeps every request's
 * raw body and headers, answers as told, and verifies signatures with the npm
 * `standardwebhooks` package, as a receiver would.
 */
export class WebhookReceiver {
  readonly received: Received[] = [];
  /** Requests being answered now, and the most at once. */
  inFlight = 0;
  maxInFlight = 0;
  answer: Answer = () => ({ status: 204 });
  private server: Server | null = null;
  private readonly sockets = new Set<import('node:net').Socket>();

  static async start(answer?: Answer): Promise<WebhookReceiver> {
    const receiver = new WebhookReceiver();
    if (answer) {
      receiver.answer = answer;
    }
    await receiver.listen();
    return receiver;
  }

  private listen(port = 0): Promise<void> {
    this.server = createServer((req, res) => void this.handle(req, res));
    this.server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    return new Promise((resolve) => this.server!.listen(port, '127.0.0.1', () => resolve()));
  }

  get port(): number {
    return (this.server!.address() as AddressInfo).port;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/hook`;
  }

  /** Stops listening and cuts every connection (a receiver that goes down). */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    for (const socket of this.sockets) {
      socket.destroy();
    }
    if (server) {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }

  /** Listens again on the same port (the receiver is back). */
  async restart(port: number): Promise<void> {
    await this.listen(port);
  }

  /** Whether every received request verifies with `secret` (or any of `secrets`). */
  verifiedWith(received: Received, secret: string): boolean {
    try {
      new Webhook(secret).verify(received.body, {
        'webhook-id': received.id,
        'webhook-timestamp': received.timestamp,
        'webhook-signature': received.signature,
      });
      return true;
    } catch {
      return false;
    }
  }

  ids(): string[] {
    return this.received.map((r) => r.id);
  }

  ofType(type: string): Received[] {
    return this.received.filter((r) => r.event.type === type);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      const chunks: Buffer[] = [];
      for await (const chunk of req) {
        chunks.push(chunk as Buffer);
      }
      const body = Buffer.concat(chunks).toString('utf8');
      const received: Received = {
        id: String(req.headers['webhook-id']),
        timestamp: String(req.headers['webhook-timestamp']),
        signature: String(req.headers['webhook-signature']),
        body,
        event: JSON.parse(body) as Received['event'],
        at: Date.now(),
      };
      const answer = await this.answer(req, received);
      if (answer.delayMs) {
        await new Promise((resolve) => setTimeout(resolve, answer.delayMs));
      }
      this.received.push(received);
      res.writeHead(answer.status, answer.headers ?? {});
      res.end();
    } catch {
      res.destroy();
    } finally {
      this.inFlight--;
    }
  }
}

/** Polls `check` until it holds (returns truthy), or fails after `timeoutMs`. */
export async function eventually<T>(
  check: () => T | Promise<T>,
  timeoutMs = 10_000,
  what = 'condition',
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) {
      return value as NonNullable<T>;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * Receivers started on demand by the enclosing describe's tests and stopped after them: the
 * returned function starts one.
 */
export function useReceivers(): () => Promise<WebhookReceiver> {
  const started: WebhookReceiver[] = [];
  afterAll(async () => {
    await Promise.all(started.map((r) => r.stop()));
  });
  return async () => {
    const r = await WebhookReceiver.start();
    started.push(r);
    return r;
  };
}
