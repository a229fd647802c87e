import { Job } from 'bullmq';
import { StoreError } from '../../common/errors/store-error';
import type { RedisStoreConnection } from '../../conversations/repositories/redis/redis-connection';
import type { WebhookSettings } from '../../config/app.settings';
import { DeliveryObserver, SILENT_OBSERVER } from '../delivery-policy';
import type { WebhookSender } from '../webhook-sender';
import { WebhookStore } from '../webhook.store';
import {
  DeliveryPage,
  DeliveryQuery,
  DeliveryView,
  EndpointPatch,
  EndpointRecord,
  EndpointView,
  endpointView,
  NewEndpoint,
  newEndpoint,
  OLD_SECRET_OVERLAP_MS,
  patchedEndpoint,
  deliveryCursor,
  readDeliveryCursor,
  rotatedEndpoint,
  testEvent,
  WebhookEvent,
  WebhookEventType,
} from '../webhook.model';
import { DeliveryJobData, RedisDeliveryQueues } from './redis-delivery-queues';

function eventOf(job: Job<DeliveryJobData>): WebhookEvent {
  return {
    id: job.data.id,
    type: job.data.type as WebhookEventType,
    at: job.data.at,
    body: job.data.body,
  };
}

/**
 * The webhook store on Redis or Redis Cluster, shared by every process of every instance:
 * endpoints in one hash (RedisEndpoints), deliveries in a BullMQ queue per endpoint, sent by
 * a worker per endpoint in every process (RedisDeliveryQueues). The fan-out queues through
 * `queues.enqueue`.
 */
export class RedisWebhookStore extends WebhookStore {
  readonly queues: RedisDeliveryQueues;

  /**
   * @param connection the conversation store's (RedisConversationRepository.connection)
   * @param prefix REDIS_KEY_PREFIX
   */
  constructor(
    readonly connection: RedisStoreConnection,
    prefix: string,
    private readonly settings: WebhookSettings,
    sender: WebhookSender,
    observer: DeliveryObserver = SILENT_OBSERVER,
    /** The time attempts are signed at (a test moves it past a rotation's overlap). */
    clock: () => number = Date.now,
  ) {
    super();
    this.queues = new RedisDeliveryQueues(connection, prefix, settings, sender, observer, clock);
    this.run = (command) => connection.run(command);
  }

  /** A call to Redis (BullMQ's included): a failure to reach it becomes store_unavailable. */
  private readonly run: <T>(command: () => Promise<T>) => Promise<T>;

  /** Starts delivering: a worker per enabled endpoint, following changes from every instance. */
  start(): Promise<void> {
    return this.queues.start();
  }

  /**
   * Stops delivering: attempts in flight are aborted and put back for another instance, or
   * with `force` left to their locks' expiry (see RedisDeliveryQueues.stop).
   */
  stop(options: { force?: boolean } = {}): Promise<void> {
    return this.queues.stop(options);
  }

  private get endpoints() {
    return this.queues.endpoints;
  }

  async createEndpoint(
    input: NewEndpoint,
    now: number,
  ): Promise<{ endpoint: EndpointView; secret: string }> {
    const record = newEndpoint(input, now);
    await this.endpoints.create(record);
    await this.queues.sync();
    return { endpoint: endpointView(record, now), secret: record.secret };
  }

  async listEndpoints(now: number): Promise<EndpointView[]> {
    return (await this.endpoints.all()).map((record) => endpointView(record, now));
  }

  async getEndpoint(id: string, now: number): Promise<EndpointView> {
    return endpointView(await this.record(id), now);
  }

  async updateEndpoint(id: string, patch: EndpointPatch, now: number): Promise<EndpointView> {
    const { record } = await this.endpoints.update(id, (current) =>
      patchedEndpoint(current, patch, now),
    );
    await this.queues.sync();
    return endpointView(record, now);
  }

  async deleteEndpoint(id: string): Promise<void> {
    if (!(await this.endpoints.delete(id))) {
      throw new StoreError('webhook_not_found');
    }
    await this.queues.drop(id);
  }

  async rotateSecret(
    id: string,
    now: number,
  ): Promise<{ secret: string; previousSecretExpiresAt: number }> {
    const { record } = await this.endpoints.update(id, (current) => {
      const next = rotatedEndpoint(current, now);
      if ('refused' in next) {
        throw new StoreError(next.refused);
      }
      return next;
    });
    return { secret: record.secret, previousSecretExpiresAt: now + OLD_SECRET_OVERLAP_MS };
  }

  async sendTest(id: string, now: number): Promise<{ deliveryId: string }> {
    await this.record(id);
    const event = testEvent(id, now);
    await this.queues.add(id, [event], true);
    return { deliveryId: event.id };
  }

  async deliveries(id: string, query: DeliveryQuery, now: number): Promise<DeliveryPage> {
    await this.record(id);
    const after = query.cursor ? readDeliveryCursor(query.cursor) : null;
    const page = await this.queues.listPage(id, after, query.status ?? '', query.limit);
    const queue = await this.queues.queueOf(id);
    const views = await Promise.all(
      page.map(async (entry): Promise<DeliveryView | null> => {
        const [job, logged] = await this.run(() =>
          Promise.all([
            Job.fromId<DeliveryJobData>(queue, entry.id),
            this.queues.attemptsOf(queue, entry.id),
          ]),
        );
        if (!job) {
          return null; // removed (age or count) since the page was read
        }
        const succeeded = this.queues.succeededAttempt(job);
        const attempts = succeeded ? [...logged, succeeded] : logged;
        const finishedOn = job.finishedOn ?? null;
        if (finishedOn !== null && finishedOn < now - this.settings.retentionMs) {
          return null;
        }
        const last = attempts[attempts.length - 1];
        return {
          id: job.data.id,
          type: job.data.type as WebhookEventType,
          status: entry.status,
          createdAt: entry.at,
          nextAttemptAt: entry.status === 'pending' ? (last?.retryAt ?? entry.at) : null,
          attempts: attempts.map(({ at, statusCode, durationMs, error }) => ({
            at,
            statusCode,
            durationMs,
            error,
          })),
        };
      }),
    );
    const last = page[page.length - 1];
    return {
      deliveries: views.filter((view) => view !== null),
      nextCursor: page.length === query.limit && last ? deliveryCursor(last.at, last.id) : null,
    };
  }

  async retryDelivery(id: string, deliveryId: string, _now: number): Promise<void> {
    await this.record(id);
    const queue = await this.queues.queueOf(id);
    const job = await this.run(() => Job.fromId<DeliveryJobData>(queue, deliveryId));
    if (!job) {
      throw new StoreError('webhook_delivery_not_found');
    }
    await this.requeue(id, job);
  }

  async recover(id: string, since: number, _now: number): Promise<{ requeued: number }> {
    await this.record(id);
    const queue = await this.queues.queueOf(id);
    // The failed set is bounded by WEBHOOK_LOG_LIMIT: read whole.
    const failed = await this.run(() => queue.getFailed(0, -1));
    let requeued = 0;
    for (const job of failed) {
      if (job && job.data.at >= since && (await this.requeue(id, job))) {
        requeued++;
      }
    }
    return { requeued };
  }

  /** Pending deliveries per endpoint, for the queue-depth gauge. */
  pendingCounts(): Promise<Record<string, number>> {
    return this.queues.pendingCounts();
  }

  /**
   * Queues a logged delivery again with a fresh schedule: a failed one goes back to waiting
   * with its attempts kept in its log; a succeeded one is queued anew (same id); a pending one
   * waiting for its next attempt is due now (its schedule goes on), as in memory; one waiting
   * or in flight is left as it is. Whether it was queued again.
   */
  private async requeue(id: string, job: Job<DeliveryJobData>): Promise<boolean> {
    const state = await this.run(() => job.getState());
    const event = eventOf(job);
    if (state === 'failed') {
      await this.queues.recount(id, event);
      await this.run(() =>
        job.retry('failed', { resetAttemptsMade: true, resetAttemptsStarted: true }),
      );
      return true;
    }
    if (state === 'completed') {
      await this.run(() => job.remove());
      await this.queues.add(id, [event], false);
      return true;
    }
    if (state === 'delayed') {
      try {
        await job.promote();
        return true;
      } catch (error) {
        if ((await this.run(() => job.getState())) !== 'delayed') {
          return false; // promoted meanwhile by another call, or taken: on its way either way
        }
        return this.run(() => Promise.reject(error)); // as every other Redis error
      }
    }
    return false;
  }

  private async record(id: string): Promise<EndpointRecord> {
    const record = await this.endpoints.get(id);
    if (!record) {
      throw new StoreError('webhook_not_found');
    }
    return record;
  }
}
