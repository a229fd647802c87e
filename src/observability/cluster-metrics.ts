import { AggregatorRegistry, MetricObjectWithValues, MetricValue, Registry } from 'prom-client';
import { MessagePort } from '../cluster/message-port';

/**
 * Cluster-wide metrics over the IPC channel. The worker serving GET /metrics asks the primary
 * (`scrape`); the primary asks every worker for its metrics (`collect`), adds its own, sums
 * them with prom-client's AggregatorRegistry.aggregate and answers the text (`scraped`).
 * Whichever worker serves the scrape, the answer covers the whole cluster.
 */
export const METRICS_CHANNEL = 'chat:metrics';

type MetricsJson = MetricObjectWithValues<MetricValue<string>>[];

export type MetricsMessage =
  | { ch: typeof METRICS_CHANNEL; kind: 'scrape'; id: number }
  | { ch: typeof METRICS_CHANNEL; kind: 'scraped'; id: number; text?: string; error?: string }
  | { ch: typeof METRICS_CHANNEL; kind: 'collect'; id: number }
  | { ch: typeof METRICS_CHANNEL; kind: 'collected'; id: number; metrics: MetricsJson };

function isMetricsMessage(message: unknown): message is MetricsMessage {
  return (
    typeof message === 'object' &&
    message !== null &&
    (message as MetricsMessage).ch === METRICS_CHANNEL &&
    typeof (message as MetricsMessage).id === 'number'
  );
}

/** Waits for answers by id, each with a timeout. */
class Waiting<T> {
  private nextId = 1;
  private readonly pending = new Map<number, (value: T | null) => void>();

  constructor(private readonly timeoutMs: number) {}

  /** Sends with a fresh id; resolves with the answer, or null on timeout or failure to send. */
  ask(send: (id: number) => void): Promise<T | null> {
    const id = this.nextId++;
    return new Promise<T | null>((resolve) => {
      const timer = setTimeout(() => this.settle(id, null), this.timeoutMs);
      this.pending.set(id, (value) => {
        clearTimeout(timer);
        resolve(value);
      });
      try {
        send(id);
      } catch {
        this.settle(id, null);
      }
    });
  }

  settle(id: number, value: T | null): void {
    const resolve = this.pending.get(id);
    this.pending.delete(id);
    resolve?.(value);
  }
}

/** A worker as the hub sees it: something to send to. */
export interface MetricsPeer {
  send(message: MetricsMessage): void;
}

/** The primary's side: answers scrapes with the whole cluster's metrics. */
export class ClusterMetricsHub {
  private readonly collecting: Waiting<MetricsJson>;

  /**
   * @param workers the workers running now
   * @param timeoutMs how long a worker gets to send its metrics; one that is late is left out
   *   of that scrape rather than failing it
   */
  constructor(
    private readonly registry: Registry,
    private readonly workers: () => MetricsPeer[],
    timeoutMs: number,
  ) {
    this.collecting = new Waiting(timeoutMs);
  }

  /** Handles a message from a worker; false when it is not about metrics. */
  handle(from: MetricsPeer, message: unknown): boolean {
    if (!isMetricsMessage(message)) {
      return false;
    }
    if (message.kind === 'collected') {
      this.collecting.settle(message.id, Array.isArray(message.metrics) ? message.metrics : null);
    } else if (message.kind === 'scrape') {
      const { id } = message;
      this.render().then(
        (text) => from.send({ ch: METRICS_CHANNEL, kind: 'scraped', id, text }),
        (error: unknown) =>
          from.send({ ch: METRICS_CHANNEL, kind: 'scraped', id, error: String(error) }),
      );
    }
    return true;
  }

  /** Every process's metrics, summed, as Prometheus text. */
  async render(): Promise<string> {
    const [own, ...theirs] = await Promise.all([
      this.registry.getMetricsAsJSON(),
      ...this.workers().map((worker) =>
        this.collecting.ask((id) => worker.send({ ch: METRICS_CHANNEL, kind: 'collect', id })),
      ),
    ]);
    const all = [own, ...theirs.filter((m): m is MetricsJson => m !== null)];
    return AggregatorRegistry.aggregate(all).metrics();
  }
}

/** A worker's side: gives its metrics when collected, and asks the primary for a scrape. */
export class ClusterMetricsClient {
  private readonly scrapes: Waiting<string>;
  private readonly unsubscribe: () => void;

  constructor(
    private readonly registry: Registry,
    private readonly port: MessagePort,
    timeoutMs: number,
  ) {
    this.scrapes = new Waiting(timeoutMs);
    this.unsubscribe = port.onMessage((message) => this.onMessage(message));
  }

  /** The cluster's metrics as Prometheus text; null when the primary did not answer. */
  scrape(): Promise<string | null> {
    return this.scrapes.ask((id) => this.port.send({ ch: METRICS_CHANNEL, kind: 'scrape', id }));
  }

  close(): void {
    this.unsubscribe();
  }

  private onMessage(message: unknown): void {
    if (!isMetricsMessage(message)) {
      return;
    }
    if (message.kind === 'scraped') {
      this.scrapes.settle(message.id, typeof message.text === 'string' ? message.text : null);
    } else if (message.kind === 'collect') {
      const { id } = message;
      void this.registry.getMetricsAsJSON().then((metrics) => {
        try {
          this.port.send({ ch: METRICS_CHANNEL, kind: 'collected', id, metrics });
        } catch {
          // The primary is gone; it will not wait for this.
        }
      });
    }
  }
}
