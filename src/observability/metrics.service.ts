import { Inject, Injectable, OnApplicationShutdown } from '@nestjs/common';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { processPort } from '../cluster/message-port';
import { PROCESS_ROLE, ProcessRole } from '../cluster/process-role';
import { ObservabilitySettings } from '../config/app.settings';
import { withTimeout } from '../common/time/with-timeout';
import { StoreStats } from '../conversations/conversation.repository';
import { ClusterMetricsClient } from './cluster-metrics';

/** Seconds; from a fast in-memory answer to a request that waited on a slow store. */
const HTTP_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
const IPC_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 1, 5];

/** How long a scrape waits for the primary, which itself waits up to 1 s for each worker. */
const SCRAPE_TIMEOUT_MS = 3_000;
/** How long a scrape waits for the store's gauges before leaving them as they were. */
const STORE_READ_TIMEOUT_MS = 500;
/** How long the primary waits for one worker's metrics before leaving them out. */
export const COLLECT_TIMEOUT_MS = 1_000;

interface RequestSeries {
  count: Counter.Internal;
  duration: Histogram.Internal<'method' | 'route' | 'status'>;
}

/**
 * This process's Prometheus metrics, in a registry of its own. In cluster mode each process
 * keeps its own and /metrics shows them summed (see ClusterMetricsHub). With
 * METRICS_ENABLED=false nothing is collected and the observe methods do nothing.
 */
@Injectable()
export class MetricsService implements OnApplicationShutdown {
  readonly registry = new Registry();
  readonly enabled: boolean;
  private readonly httpRequests: Counter<'method' | 'route' | 'status'>;
  private readonly httpDuration: Histogram<'method' | 'route' | 'status'>;
  private readonly storeCalls: Histogram<'operation' | 'outcome'>;
  private readonly evicted: Counter;
  private readonly restarts: Counter;
  private readonly backlogEnded: Counter;
  /** Label children by "method route status": labels() hashes its arguments on every call. */
  private readonly series = new Map<string, RequestSeries>();
  /** In a cluster worker: the way to the whole cluster's metrics, through the primary. */
  private readonly cluster: ClusterMetricsClient | null;

  constructor(settings: ObservabilitySettings, @Inject(PROCESS_ROLE) role: ProcessRole) {
    this.enabled = settings.metricsEnabled;
    const registers = [this.registry];
    this.httpRequests = new Counter({
      name: 'http_requests_total',
      help: 'HTTP requests answered, by method, route pattern and status.',
      labelNames: ['method', 'route', 'status'],
      registers,
    });
    this.httpDuration = new Histogram({
      name: 'http_request_duration_seconds',
      help: 'Time from a request arriving to its response finishing, in seconds.',
      labelNames: ['method', 'route', 'status'],
      buckets: HTTP_BUCKETS,
      registers,
    });
    this.storeCalls = new Histogram({
      name: 'chat_store_ipc_duration_seconds',
      help: "A cluster worker's calls to the primary's store over IPC, until answered, in seconds.",
      labelNames: ['operation', 'outcome'],
      buckets: IPC_BUCKETS,
      registers,
    });
    this.evicted = new Counter({
      name: 'chat_conversations_evicted_total',
      help: 'Conversations removed by eviction sweeps for inactivity.',
      registers,
    });
    this.restarts = new Counter({
      name: 'chat_worker_restarts_total',
      help: 'Cluster workers the primary has started to replace one that exited.',
      registers,
    });
    this.backlogEnded = new Counter({
      name: 'chat_event_streams_backlog_ended_total',
      help: 'Event streams ended because their client read too slowly: more than SSE_MAX_BACKLOG_BYTES unsent.',
      registers,
    });
    if (this.enabled) {
      // Process memory and CPU, heap, event-loop lag (nodejs_eventloop_lag_*), GC.
      collectDefaultMetrics({ register: this.registry });
    }
    this.cluster =
      this.enabled && role === 'worker'
        ? new ClusterMetricsClient(this.registry, processPort(), SCRAPE_TIMEOUT_MS)
        : null;
  }

  /**
   * Prometheus text for GET /metrics: this process's metrics, or in a cluster worker the
   * whole cluster's, summed by the primary. Null when the primary did not answer in time.
   */
  render(): Promise<string | null> {
    return this.cluster ? this.cluster.scrape() : this.registry.metrics();
  }

  observeRequest(method: string, route: string, status: number, seconds: number): void {
    if (!this.enabled) {
      return;
    }
    const key = `${method} ${route} ${status}`;
    let series = this.series.get(key);
    if (!series) {
      const labels = { method, route, status: String(status) };
      series = {
        count: this.httpRequests.labels(labels),
        duration: this.httpDuration.labels(labels),
      };
      this.series.set(key, series);
    }
    series.count.inc();
    series.duration.observe(seconds);
  }

  observeStoreCall(operation: string, ok: boolean, seconds: number): void {
    if (this.enabled) {
      this.storeCalls.observe({ operation, outcome: ok ? 'ok' : 'error' }, seconds);
    }
  }

  countEvicted(conversations: number): void {
    if (this.enabled) {
      this.evicted.inc(conversations);
    }
  }

  countStreamEndedForBacklog(): void {
    if (this.enabled) {
      this.backlogEnded.inc();
    }
  }

  countWorkerRestart(): void {
    if (this.enabled) {
      this.restarts.inc();
    }
  }

  /**
   * Gauges of what the store holds, read from it at each scrape. Registered by the process
   * that owns the store (a single process, or the cluster primary), so that a cluster's
   * summed metrics count each conversation once.
   */
  watchStore(stats: () => Promise<StoreStats>): void {
    if (!this.enabled) {
      return;
    }
    const gauge = (name: string, help: string, pick: (stats: StoreStats) => number) =>
      new Gauge({
        name,
        help,
        registers: [this.registry],
        async collect() {
          // An unreachable store leaves the gauge as it was: the scrape still answers.
          const current = await withTimeout(stats(), STORE_READ_TIMEOUT_MS).catch(() => null);
          if (current) {
            this.set(pick(current));
          }
        },
      });
    gauge('chat_conversations_stored', 'Conversations in the store.', (s) => s.conversations);
    gauge('chat_messages_stored', 'Messages in the store.', (s) => s.messages);
    gauge(
      'chat_store_bytes',
      'What the in-memory store holds, as its byte budget (MAX_STORE_BYTES) counts it; 0 on Redis.',
      (s) => s.bytes ?? 0,
    );
    gauge(
      'chat_store_bytes_budget',
      "The in-memory store's byte budget (MAX_STORE_BYTES); 0 on Redis.",
      (s) => s.maxBytes ?? 0,
    );
  }

  /** After the drain (TimedExpressAdapter.close), so the requests it lets finish still count. */
  onApplicationShutdown(): void {
    this.cluster?.close();
    this.registry.clear();
  }
}
