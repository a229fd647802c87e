import { Injectable, Logger } from '@nestjs/common';
import { SnapshotSettings, StoreSettings, WebhookSettings } from '../config/app.settings';
import { Clock } from '../common/time/clock';
import { problem, ValidationFailedException } from '../common/errors/problem.catalogue';
import { FieldError } from '../common/errors/problem';
import { parseDecimal } from '../common/validation/decimal-integer';
import { CreateWebhookDto, UpdateWebhookDto, WEBHOOK_EVENTS_MAX } from './dto/webhook.dto';
import {
  DeliveryPage,
  DeliveryStatus,
  ENDPOINT_ID_PATTERN,
  EndpointView,
  readDeliveryCursor,
  WEBHOOK_EVENT_PATTERNS,
} from './webhook.model';
import { WebhookStore } from './webhook.store';
import { urlRefusal } from './webhook-url';

export const DELIVERY_LIMIT_DEFAULT = 20;
export const DELIVERY_LIMIT_MAX = 100;
const DELIVERY_STATUSES: readonly DeliveryStatus[] = ['pending', 'succeeded', 'failed'];

/**
 * The webhook routes' rules beyond the DTOs' types: what a URL, an event filter, a recover's
 * `since` and a log query may be (each refusal names its field), and which endpoint ids can
 * exist. The store does the rest, in whichever process keeps it.
 */
@Injectable()
export class WebhooksService {
  private readonly logger = new Logger('Webhooks');
  private warnedVolatile = false;

  constructor(
    private readonly store: WebhookStore,
    private readonly settings: WebhookSettings,
    private readonly clock: Clock,
    private readonly storeSettings: StoreSettings,
    private readonly snapshot: SnapshotSettings,
  ) {}

  async create(dto: CreateWebhookDto): Promise<{ endpoint: EndpointView; secret: string }> {
    const errors = [...this.urlErrors(dto.url), ...this.eventErrors(dto.events)];
    this.refuse(errors);
    const created = await this.store.createEndpoint(
      { url: dto.url, events: dto.events as string[] | undefined, description: dto.description },
      this.clock.now(),
    );
    if (this.storeSettings.kind !== 'redis' && !this.snapshot.path && !this.warnedVolatile) {
      // In memory without a snapshot, a restart loses the endpoints and every queued delivery.
      this.warnedVolatile = true;
      this.logger.warn(
        'Webhook endpoints and their queued deliveries are kept in memory only: a restart loses them. Set SNAPSHOT_PATH to keep them across graceful restarts, or use STORE=redis.',
      );
    }
    return created;
  }

  list(): Promise<EndpointView[]> {
    return this.store.listEndpoints(this.clock.now());
  }

  get(id: string): Promise<EndpointView> {
    return this.store.getEndpoint(this.known(id), this.clock.now());
  }

  update(id: string, dto: UpdateWebhookDto): Promise<EndpointView> {
    const known = this.known(id);
    const errors = [
      ...(dto.url !== undefined ? this.urlErrors(dto.url) : []),
      ...this.eventErrors(dto.events),
    ];
    this.refuse(errors);
    return this.store.updateEndpoint(
      known,
      {
        url: dto.url,
        events: dto.events as string[] | undefined,
        description: dto.description,
        enabled: dto.enabled,
      },
      this.clock.now(),
    );
  }

  delete(id: string): Promise<void> {
    return this.store.deleteEndpoint(this.known(id));
  }

  rotate(id: string): Promise<{ secret: string; previousSecretExpiresAt: number }> {
    return this.store.rotateSecret(this.known(id), this.clock.now());
  }

  test(id: string): Promise<{ deliveryId: string }> {
    return this.store.sendTest(this.known(id), this.clock.now());
  }

  deliveries(id: string, query: Record<string, unknown>): Promise<DeliveryPage> {
    const known = this.known(id);
    const errors: FieldError[] = [];
    const { status, limit, cursor } = query;
    for (const name of Object.keys(query)) {
      if (!['status', 'limit', 'cursor'].includes(name)) {
        errors.push({ field: name, message: `${name} is not a parameter of this route` });
      }
    }
    if (status !== undefined && !DELIVERY_STATUSES.includes(status as DeliveryStatus)) {
      errors.push({ field: 'status', message: 'status must be pending, succeeded or failed' });
    }
    const parsedLimit = limit === undefined ? DELIVERY_LIMIT_DEFAULT : parseDecimal(limit);
    if (parsedLimit === undefined || parsedLimit < 1 || parsedLimit > DELIVERY_LIMIT_MAX) {
      errors.push({
        field: 'limit',
        message: `limit must be an integer from 1 to ${DELIVERY_LIMIT_MAX}`,
      });
    }
    if (cursor !== undefined && (typeof cursor !== 'string' || !readDeliveryCursor(cursor))) {
      errors.push({ field: 'cursor', message: 'cursor must be a nextCursor of this route' });
    }
    this.refuse(errors);
    return this.store.deliveries(
      known,
      {
        status: status as DeliveryStatus | undefined,
        limit: parsedLimit as number,
        cursor: cursor as string | undefined,
      },
      this.clock.now(),
    );
  }

  retry(id: string, deliveryId: string): Promise<void> {
    if (!/^evt_[A-Za-z0-9_]{1,200}$/.test(deliveryId)) {
      throw problem('webhook_delivery_not_found');
    }
    return this.store.retryDelivery(this.known(id), deliveryId, this.clock.now());
  }

  recover(id: string, body: Record<string, unknown>): Promise<{ requeued: number }> {
    const known = this.known(id);
    const now = this.clock.now();
    this.refuse(
      Object.keys(body)
        .filter((name) => name !== 'since')
        .map((field) => ({ field, message: `property ${field} should not exist` })),
    );
    const since = typeof body.since === 'number' ? body.since : NaN;
    const oldest = now - this.settings.retentionMs;
    if (!Number.isSafeInteger(since) || since < 0) {
      this.refuse([{ field: 'since', message: 'since must be a time in ms since the epoch' }]);
    }
    if (since < oldest) {
      this.refuse([
        {
          field: 'since',
          message: `since must be within WEBHOOK_RETENTION_MS (${this.settings.retentionMs} ms): at or after ${oldest}`,
        },
      ]);
    }
    return this.store.recover(known, since, now);
  }

  /** An id that cannot exist is as unknown as one that does not. */
  private known(id: string): string {
    if (!ENDPOINT_ID_PATTERN.test(id)) {
      throw problem('webhook_not_found');
    }
    return id;
  }

  private urlErrors(url: string): FieldError[] {
    const refusal = urlRefusal(url, this.settings.allowPrivateNetworks);
    return refusal ? [{ field: 'url', message: refusal }] : [];
  }

  private eventErrors(events: unknown[] | undefined): FieldError[] {
    if (events === undefined) {
      return [];
    }
    if (events.length > WEBHOOK_EVENTS_MAX) {
      return [
        { field: 'events', message: `events must list at most ${WEBHOOK_EVENTS_MAX} entries` },
      ];
    }
    return events.flatMap((event, i) =>
      typeof event === 'string' && WEBHOOK_EVENT_PATTERNS.includes(event)
        ? []
        : [
            {
              field: `events[${i}]`,
              message: `events[${i}] must be one of ${WEBHOOK_EVENT_PATTERNS.join(', ')}`,
            },
          ],
    );
  }

  private refuse(errors: FieldError[]): void {
    if (errors.length > 0) {
      throw new ValidationFailedException(errors);
    }
  }
}
