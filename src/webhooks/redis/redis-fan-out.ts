import { randomUUID } from 'node:crypto';
import { Logger } from '@nestjs/common';
import { Cluster, Redis } from 'ioredis';
import type { TappedChange } from '../../conversations/change-outbox';
import { changeEvent, EndpointRecord, WebhookEvent, wants } from '../webhook.model';
import { CHANGE_FIELD, EVENT_FIELD } from './redis-outbox';

/**
 * What the fan-out queues deliveries with: the endpoints as they are now, and each endpoint's
 * queue (RedisDeliveryQueues: jobId = event id, so queuing an event twice is harmless while its
 * job is kept).
 */
export interface DeliveryEnqueuer {
  endpointsNow(): Promise<EndpointRecord[]>;
  /** `record`: the endpoint as endpointsNow just read it (spares reading it again). */
  enqueue(endpointId: string, events: WebhookEvent[], record?: EndpointRecord): Promise<void>;
}

export interface FanOutOptions {
  /** Entries read at once. */
  batch?: number;
  /** How long a read waits for entries before looking again (and at a stop). */
  blockMs?: number;
  /** Entries left pending this long by a consumer (dead, or stuck) are taken over. */
  claimIdleMs?: number;
  /** How often pending entries are looked for. */
  claimEveryMs?: number;
  /** This process's consumer name (unique by default). */
  consumer?: string;
  /**
   * After a batch smaller than `batch`, how long entries are let gather before the next read:
   * a blocking read answers with the first entry, so under a steady flow of writes each read
   * would take a few, and every read costs its round trips and the batch's per-endpoint calls.
   */
  gatherMs?: number;
}

/** The consumer group every process reads the outbox in. */
export const FAN_OUT_GROUP = 'fanout';

type StreamEntry = [id: string, fields: string[]];

/**
 * Every process runs one: it reads the outbox (XREADGROUP, group `fanout`, a consumer of its
 * own, so each entry goes to one process), reads the endpoints as they are then, and queues
 * each entry's events for every endpoint that wants them; then acknowledges and deletes the
 * entries. So an endpoint gets every change whose entry is fanned out after it exists, and
 * none once it is deleted or disabled. An entry whose queuing failed stays pending and is
 * taken again (by this or another process) after `claimIdleMs`, as are those of a process
 * that died (XAUTOCLAIM): at least once, the delivery queues dropping the duplicates.
 *
 * The blocking read runs on a connection of its own (a duplicate of the store's client), so
 * it never holds up the store's commands; a stop ends the read by closing that connection.
 */
export class RedisFanOut {
  private readonly logger = new Logger('RedisFanOut');
  private readonly batch: number;
  private readonly blockMs: number;
  private readonly claimIdleMs: number;
  private readonly claimEveryMs: number;
  private readonly gatherMs: number;
  readonly consumer: string;
  private reader: Redis | Cluster | null = null;
  private running: Promise<void> | null = null;
  private stopping = false;
  /** In the blocking read: a stop cuts it; otherwise it lets the batch in hand finish. */
  private reading = false;
  private lastClaimAt = 0;

  /**
   * @param redis the store's client (duplicated for the blocking read)
   * @param stream the outbox (RedisKeys.webhookOutbox)
   */
  constructor(
    private readonly redis: Redis | Cluster,
    private readonly stream: string,
    private readonly enqueuer: DeliveryEnqueuer,
    options: FanOutOptions = {},
  ) {
    this.batch = options.batch ?? 200;
    this.blockMs = options.blockMs ?? 1_000;
    this.claimIdleMs = options.claimIdleMs ?? 30_000;
    this.claimEveryMs = options.claimEveryMs ?? 5_000;
    this.consumer = options.consumer ?? `fanout-${randomUUID()}`;
    this.gatherMs = options.gatherMs ?? 25;
  }

  start(): void {
    if (this.running) {
      return;
    }
    this.stopping = false;
    // The store's client fails commands at once while disconnected and times each out; the
    // reader waits for its connection, and its blocking read may take blockMs.
    const overrides = { enableOfflineQueue: true, commandTimeout: this.blockMs + 10_000 };
    this.reader =
      this.redis instanceof Cluster
        ? this.redis.duplicate(undefined, {
            enableOfflineQueue: true,
            redisOptions: { ...this.redis.options.redisOptions, ...overrides },
          })
        : this.redis.duplicate(overrides);
    this.reader.on('error', () => undefined); // the loop tells what matters
    this.running = this.loop();
  }

  /**
   * Ends the loop: a blocking read is cut by closing its connection; a batch being queued
   * is let finish and acknowledged first (else another process would queue it again after
   * claimIdleMs: a duplicate, dropped downstream, but late).
   */
  async stop(): Promise<void> {
    this.stopping = true;
    const reader = this.reader;
    if (this.reading) {
      reader?.disconnect();
    }
    await this.running;
    reader?.disconnect();
    this.running = null;
    this.reader = null;
  }

  private async loop(): Promise<void> {
    const reader = this.reader as Redis | Cluster;
    let failing = false;
    while (!this.stopping) {
      try {
        await this.ensureGroup(reader);
        if (Date.now() - this.lastClaimAt >= this.claimEveryMs) {
          this.lastClaimAt = Date.now();
          await this.claimPending(reader);
        }
        if (this.stopping) {
          return;
        }
        this.reading = true;
        const read = (await reader.xreadgroup(
          'GROUP',
          FAN_OUT_GROUP,
          this.consumer,
          'COUNT',
          this.batch,
          'BLOCK',
          this.blockMs,
          'STREAMS',
          this.stream,
          '>',
        )) as [string, StreamEntry[]][] | null;
        this.reading = false;
        const entries = read ? read[0][1] : [];
        if (entries.length > 0) {
          const { acknowledged } = await this.fanOut(reader, entries);
          if (entries.length < this.batch && this.gatherMs > 0 && !this.stopping) {
            // The acknowledgement's round trip runs while entries gather.
            await Promise.all([
              acknowledged,
              new Promise((resolve) => setTimeout(resolve, this.gatherMs)),
            ]);
          } else {
            await acknowledged;
          }
        }
        if (failing) {
          this.logger.log('The webhooks outbox is read again');
          failing = false;
        }
      } catch (error) {
        this.reading = false;
        if (this.stopping) {
          return;
        }
        if (!failing) {
          this.logger.error(
            `Reading the webhooks outbox failed: ${error instanceof Error ? error.message : String(error)}. Retrying every second.`,
          );
          failing = true;
        }
        this.groupReady = false;
        await new Promise((resolve) => setTimeout(resolve, 1_000));
      }
    }
  }

  private groupReady = false;

  /** The group, from the stream's start: entries written before any process read are fanned out. */
  private async ensureGroup(reader: Redis | Cluster): Promise<void> {
    if (this.groupReady) {
      return;
    }
    try {
      await reader.xgroup('CREATE', this.stream, FAN_OUT_GROUP, '0', 'MKSTREAM');
    } catch (error) {
      if (!(error instanceof Error) || !error.message.startsWith('BUSYGROUP')) {
        throw error;
      }
    }
    this.groupReady = true;
  }

  /** Takes over entries pending longer than claimIdleMs (a dead consumer's, or a failed fan-out). */
  private async claimPending(reader: Redis | Cluster): Promise<void> {
    let cursor = '0-0';
    do {
      const [next, entries] = (await reader.xautoclaim(
        this.stream,
        FAN_OUT_GROUP,
        this.consumer,
        this.claimIdleMs,
        cursor,
        'COUNT',
        this.batch,
      )) as [string, StreamEntry[], string[]?];
      // Deleted entries come back as nulls (Redis 7 lists their ids apart).
      const live = entries.filter((entry) => Array.isArray(entry) && entry[1]);
      if (live.length > 0) {
        await (
          await this.fanOut(reader, live)
        ).acknowledged;
      }
      cursor = next;
    } while (cursor !== '0-0' && !this.stopping);
  }

  /**
   * Queues a batch: the endpoints read once, each entry's events made once, one enqueue per
   * endpoint. Acknowledged and deleted only once every endpoint has them: answers once they
   * are queued, with the acknowledgement under way (the caller awaits it before reading on).
   */
  private async fanOut(
    reader: Redis | Cluster,
    entries: StreamEntry[],
  ): Promise<{ acknowledged: Promise<void> }> {
    const endpoints = await this.enqueuer.endpointsNow();
    // With no endpoint (the common case while webhooks are unused) nothing is parsed or built.
    if (endpoints.length > 0) {
      const events: WebhookEvent[] = [];
      for (const [, fields] of entries) {
        const event = eventOf(fields);
        if (event) {
          events.push(event);
        }
      }
      const queued: Promise<void>[] = [];
      for (const endpoint of endpoints) {
        const wanted = events.filter((event) => wants(endpoint, event.type));
        if (wanted.length > 0) {
          queued.push(this.enqueuer.enqueue(endpoint.id, wanted, endpoint));
        }
      }
      await Promise.all(queued);
    }
    // Acknowledged and deleted in one round trip (one slot: the outbox is one key).
    const ids = entries.map(([id]) => id);
    // (Wrapped: an async function would wait for a promise it returns.)
    const acknowledged = reader
      .pipeline()
      .xack(this.stream, FAN_OUT_GROUP, ...ids)
      .xdel(this.stream, ...ids)
      .exec()
      .then((results) => {
        const failed = results?.find(([error]) => error)?.[0];
        if (failed) {
          throw failed;
        }
      });
    return { acknowledged };
  }
}

/** An entry's event: a change's, made from it here, or an eviction's, made when it happened. */
function eventOf(fields: string[]): WebhookEvent | null {
  for (let i = 0; i + 1 < fields.length; i += 2) {
    if (fields[i] === CHANGE_FIELD) {
      return changeEvent(JSON.parse(fields[i + 1]) as TappedChange);
    }
    if (fields[i] === EVENT_FIELD) {
      return JSON.parse(fields[i + 1]) as WebhookEvent;
    }
  }
  return null;
}
