import { Counter, Registry } from 'prom-client';
import { MessagePort } from '../cluster/message-port';
import { ClusterMetricsClient, ClusterMetricsHub, MetricsPeer } from './cluster-metrics';

function registryCounting(value: number): Registry {
  const registry = new Registry();
  new Counter({ name: 'requests_total', help: 'h', registers: [registry] }).inc(value);
  return registry;
}

/** A worker wired to the hub through in-process message passing, optionally mute. */
function worker(
  hub: () => ClusterMetricsHub,
  registry: Registry,
  mute = false,
): { peer: MetricsPeer; client: ClusterMetricsClient } {
  const listeners = new Set<(message: unknown) => void>();
  const peer: MetricsPeer = {
    send: (message) => {
      if (!mute) {
        setImmediate(() => listeners.forEach((listener) => listener(message)));
      }
    },
  };
  const port: MessagePort = {
    send: (message) => setImmediate(() => hub().handle(peer, message)),
    onMessage: (listener) => {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    onClose: () => () => undefined,
  };
  return { peer, client: new ClusterMetricsClient(registry, port, 2_000) };
}

const total = (text: string | null) => Number(/^requests_total (\d+)$/m.exec(text ?? '')?.[1]);

describe('cluster metrics over IPC', () => {
  it('sums the primary and every worker, whichever worker asks', async () => {
    const workers: { peer: MetricsPeer; client: ClusterMetricsClient }[] = [
      worker(() => hub, registryCounting(3)),
      worker(() => hub, registryCounting(4)),
    ];
    const hub = new ClusterMetricsHub(registryCounting(1), () => workers.map((w) => w.peer), 500);

    expect(total(await workers[0].client.scrape())).toBe(8);
    expect(total(await workers[1].client.scrape())).toBe(8);
    workers.forEach((w) => w.client.close());
  });

  it('leaves out a worker that does not answer in time instead of failing the scrape', async () => {
    const workers: { peer: MetricsPeer; client: ClusterMetricsClient }[] = [
      worker(() => hub, registryCounting(3)),
      worker(() => hub, registryCounting(4), true),
    ];
    const hub = new ClusterMetricsHub(registryCounting(1), () => workers.map((w) => w.peer), 100);

    expect(total(await hub.render())).toBe(4);
    workers.forEach((w) => w.client.close());
  });

  it('ignores messages of other channels', () => {
    const hub = new ClusterMetricsHub(new Registry(), () => [], 100);

    expect(hub.handle({ send: () => undefined }, { ch: 'chat:store', calls: [] })).toBe(false);
  });

  it('gives null when the primary does not answer a scrape', async () => {
    const port: MessagePort = {
      send: () => undefined,
      onMessage: () => () => undefined,
      onClose: () => () => undefined,
    };
    const client = new ClusterMetricsClient(new Registry(), port, 50);

    expect(await client.scrape()).toBeNull();
  });
});
