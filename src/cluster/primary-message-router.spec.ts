import type { Worker } from 'node:cluster';
import type { StoreHub } from './store-hub';
import type { ClusterMetricsHub, MetricsPeer } from '../observability/cluster-metrics';
import { PrimaryMessageRouter } from './primary-message-router';

/** A worker as the router uses it: an id, and a channel that may have closed. */
function fakeWorker(id: number, connected = true) {
  const sent: unknown[] = [];
  const worker = {
    id,
    isConnected: () => connected,
    send: (message: unknown) => {
      sent.push(message);
      return true;
    },
  };
  return { worker: worker as unknown as Worker, sent };
}

/** Hubs that take the messages whose `ch` is theirs, and keep what they were given. */
function fakeHubs() {
  const store = {
    handle: jest.fn(
      (message: unknown, _reply: (answer: unknown) => void, _from?: number) =>
        (message as { ch?: string }).ch === 'store',
    ),
    forget: jest.fn(),
  };
  const metrics = {
    handle: jest.fn(
      (_from: MetricsPeer, message: unknown) => (message as { ch?: string }).ch === 'metrics',
    ),
  };
  const router = new PrimaryMessageRouter(
    store as unknown as StoreHub,
    metrics as unknown as ClusterMetricsHub,
  );
  return { store, metrics, router };
}

describe('PrimaryMessageRouter', () => {
  it('gives a store call to the store hub, naming the worker, and answers that worker', () => {
    const { store, metrics, router } = fakeHubs();
    const { worker, sent } = fakeWorker(3);
    const call = { ch: 'store', calls: [] };

    expect(router.route(worker, call)).toBe(true);

    expect(store.handle).toHaveBeenCalledWith(call, expect.any(Function), 3);
    expect(metrics.handle).not.toHaveBeenCalled();
    const reply = store.handle.mock.calls[0][1];
    reply({ answer: 1 });
    expect(sent).toEqual([{ answer: 1 }]);
  });

  it('gives a metrics message to the metrics hub, with the worker as the peer to answer', () => {
    const { store, metrics, router } = fakeHubs();
    const { worker, sent } = fakeWorker(2);
    const scrape = { ch: 'metrics', kind: 'scrape', id: 1 };

    expect(router.route(worker, scrape)).toBe(true);

    expect(store.handle).toHaveBeenCalledTimes(1);
    expect(metrics.handle).toHaveBeenCalledWith({ send: expect.any(Function) }, scrape);
    metrics.handle.mock.calls[0][0].send({ ch: 'chat:metrics', kind: 'scraped', id: 1 });
    expect(sent).toEqual([{ ch: 'chat:metrics', kind: 'scraped', id: 1 }]);
  });

  it('leaves a message no hub takes, saying so', () => {
    const { store, metrics, router } = fakeHubs();
    const { worker, sent } = fakeWorker(1);

    expect(router.route(worker, { ch: 'elsewhere' })).toBe(false);

    expect(store.handle).toHaveBeenCalledTimes(1);
    expect(metrics.handle).toHaveBeenCalledTimes(1);
    expect(sent).toEqual([]);
  });

  it('drops an answer to a worker whose channel has closed', () => {
    const { store, router } = fakeHubs();
    const { worker, sent } = fakeWorker(4, false);

    router.route(worker, { ch: 'store' });
    store.handle.mock.calls[0][1]({ late: true });

    expect(sent).toEqual([]);
  });

  it('ends what an exited worker watched in the store', () => {
    const { store, router } = fakeHubs();
    const { worker } = fakeWorker(5);

    router.forget(worker);

    expect(store.forget).toHaveBeenCalledWith(5);
  });
});
