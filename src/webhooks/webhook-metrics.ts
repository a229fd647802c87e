import { Logger } from '@nestjs/common';
import { Counter, Gauge, Histogram } from 'prom-client';
import { MetricsService } from '../observability/metrics.service';
import { AttemptOutcome, DeliveryObserver, NextStep } from './delivery-policy';

/** Attempt durations: from a quick 2xx to WEBHOOK_TIMEOUT_MS's default. */
const ATTEMPT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15];

/**
 * The webhooks' metrics and logs, in the process that delivers (a single process, the
 * cluster primary, or each Redis instance): deliveries by result, attempt latency, disables,
 * changes lost before they were queued, and queue depth per endpoint (read at each scrape). A
 * failed attempt is logged with its endpoint's id, never with a secret or the body.
 */
export class WebhookMetrics implements DeliveryObserver {
  private readonly logger = new Logger('Webhooks');
  private readonly attempts: Counter<'result'>;
  private readonly latency: Histogram;
  private readonly disables: Counter<'reason'>;
  private readonly losses: Counter;

  constructor(private readonly metrics: MetricsService) {
    const registers = [metrics.registry];
    this.attempts = new Counter({
      name: 'webhook_deliveries_total',
      help: 'Delivery attempts by result: succeeded, retry (failed, tried again later), failed (every attempt used), gone (410).',
      labelNames: ['result'],
      registers,
    });
    this.latency = new Histogram({
      name: 'webhook_attempt_duration_seconds',
      help: 'Time from connecting to the last byte of the answer (or the failure), per attempt.',
      buckets: ATTEMPT_BUCKETS,
      registers,
    });
    this.disables = new Counter({
      name: 'webhook_endpoints_disabled_total',
      help: 'Endpoints the server disabled, by reason: gone (410), failing, backlog.',
      labelNames: ['reason'],
      registers,
    });
    this.losses = new Counter({
      name: 'webhook_events_lost_total',
      help: 'Changes applied but never queued that the reconcile pass found gone from the replay buffer.',
      registers,
    });
  }

  attempted(endpointId: string, outcome: AttemptOutcome, step: NextStep['kind']): void {
    if (this.metrics.enabled) {
      this.attempts.inc({ result: step });
      this.latency.observe(outcome.durationMs / 1000);
    }
    if (!outcome.ok) {
      this.logger.warn(
        `Webhook attempt failed: endpoint ${endpointId}, ${outcome.error ?? 'error'}` +
          `${outcome.statusCode !== null ? ` (status ${outcome.statusCode})` : ''}, next: ${step}`,
      );
    }
  }

  disabled(endpointId: string, reason: 'gone' | 'failing' | 'backlog'): void {
    if (this.metrics.enabled) {
      this.disables.inc({ reason });
    }
    this.logger.warn(`Webhook endpoint ${endpointId} disabled: ${reason}`);
  }

  lost(count: number): void {
    if (this.metrics.enabled) {
      this.losses.inc(count);
    }
  }

  /** A gauge of each endpoint's pending deliveries, read from the store at each scrape. */
  watchQueues(pending: () => Promise<Record<string, number>>): void {
    if (!this.metrics.enabled) {
      return;
    }
    new Gauge({
      name: 'webhook_pending',
      help: 'Deliveries waiting (queued, scheduled for a retry or in flight), per endpoint.',
      labelNames: ['endpoint'],
      registers: [this.metrics.registry],
      async collect() {
        const counts = await pending().catch(() => null);
        if (counts) {
          this.reset();
          for (const [endpoint, count] of Object.entries(counts)) {
            this.set({ endpoint }, count);
          }
        }
      },
    });
  }
}
