import { Logger } from '@nestjs/common';
import { EventEmitter } from 'node:events';

/**
 * A stand-in for node:cluster that keeps Node's bookkeeping: a worker leaves
 * `cluster.workers` only once its process has exited AND its IPC channel has closed, in
 * whichever order those two come (lib/internal/cluster/primary.js).
 */
class FakeWorker extends EventEmitter {
  connected = true;
  readonly sent: unknown[] = [];
  readonly process = Object.assign(new EventEmitter(), {
    exitCode: null as number | null,
    signalCode: null as NodeJS.Signals | null,
    kill: jest.fn((signal: NodeJS.Signals) => {
      this.exit(null, signal);
    }),
  });

  constructor(
    readonly id: number,
    private readonly cluster: FakeCluster,
  ) {
    super();
  }

  isConnected(): boolean {
    return this.connected;
  }

  isDead(): boolean {
    return this.process.exitCode !== null || this.process.signalCode !== null;
  }

  send(message: unknown): boolean {
    this.sent.push(message);
    return true;
  }

  /** The process ends; the worker stays listed while its channel is still open. */
  exit(code: number | null, signal: NodeJS.Signals | null = null): void {
    if (this.isDead()) {
      return;
    }
    this.process.exitCode = code;
    this.process.signalCode = signal;
    if (!this.connected) {
      delete this.cluster.workers[this.id];
    }
    this.cluster.emit('exit', this, code, signal);
  }

  /** The IPC channel closes; the worker is unlisted if its process has already exited. */
  disconnect(): void {
    this.connected = false;
    if (this.isDead()) {
      delete this.cluster.workers[this.id];
    }
    this.cluster.emit('disconnect', this);
  }
}

class FakeCluster extends EventEmitter {
  workers: Record<number, FakeWorker | undefined> = {};
  private nextId = 1;
  setupPrimary = jest.fn();
  fork = jest.fn(() => {
    const worker = new FakeWorker(this.nextId++, this);
    this.workers[worker.id] = worker;
    return worker;
  });

  listed(): FakeWorker[] {
    return Object.values(this.workers).filter((w): w is FakeWorker => w !== undefined);
  }
}

const fakeCluster = new FakeCluster();
jest.mock('node:cluster', () => ({ __esModule: true, default: fakeCluster }));

// Imported after the mock is in place.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { WorkerSupervisor } = require('./worker-supervisor') as typeof import('./worker-supervisor');

const settled = async (promise: Promise<unknown>): Promise<boolean> => {
  let done = false;
  void promise.then(() => (done = true));
  // Let any chain of promise callbacks run (works under fake timers too).
  for (let i = 0; i < 10; i++) {
    await Promise.resolve();
  }
  return done;
};

describe('WorkerSupervisor.stop', () => {
  let supervisor: InstanceType<typeof WorkerSupervisor>;

  let warn: jest.SpyInstance;

  beforeEach(() => {
    warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    fakeCluster.removeAllListeners();
    fakeCluster.workers = {};
    fakeCluster.fork.mockClear();
    supervisor = new WorkerSupervisor({
      workers: 2,
      graceMs: 8_000,
      onMessage: () => undefined,
      onCrashLoop: () => undefined,
    });
    supervisor.start();
  });

  afterEach(async () => {
    jest.useRealTimers();
    // End any stop a test left waiting, so its deadline timer is cleared.
    const stopping = supervisor.stop();
    for (const worker of fakeCluster.listed()) {
      worker.exit(0);
      worker.disconnect();
    }
    await stopping;
    warn.mockRestore();
  });

  it('asks every worker to shut down', async () => {
    const stopping = supervisor.stop();
    for (const worker of fakeCluster.listed()) {
      expect(worker.sent).toEqual([{ ch: expect.any(String), cmd: 'shutdown' }]);
    }
    expect(await settled(stopping)).toBe(false);
  });

  it('resolves once every worker is gone when each channel closes before its process exits', async () => {
    const stopping = supervisor.stop();
    const [first, second] = fakeCluster.listed();
    first.disconnect();
    first.exit(0);
    expect(await settled(stopping)).toBe(false);
    second.disconnect();
    second.exit(0);
    expect(await settled(stopping)).toBe(true);
  });

  it('resolves when the last process exits before its channel has closed (still listed by Node)', async () => {
    const stopping = supervisor.stop();
    const [first, second] = fakeCluster.listed();
    first.exit(0);
    second.exit(0);
    // Node still lists both: their 'disconnect' has not come yet.
    expect(fakeCluster.listed()).toHaveLength(2);
    expect(await settled(stopping)).toBe(true);
  });

  it('kills a worker that has not drained after the grace period, then resolves', async () => {
    jest.useFakeTimers();
    const stopping = supervisor.stop();
    const [first, second] = fakeCluster.listed();
    first.exit(0);
    jest.advanceTimersByTime(8_999);
    expect(second.process.kill).not.toHaveBeenCalled();
    jest.advanceTimersByTime(1);
    expect(second.process.kill).toHaveBeenCalledWith('SIGKILL');
    expect(first.process.kill).not.toHaveBeenCalled();
    expect(warn).toHaveBeenCalledWith(`Worker ${second.id} did not drain in time: killing it`);
    expect(warn).toHaveBeenCalledTimes(1);
    expect(await settled(stopping)).toBe(true);
  });

  it('goes on 2 s after the kill even if a killed worker never reports its exit', async () => {
    jest.useFakeTimers();
    const stopping = supervisor.stop();
    const [first, second] = fakeCluster.listed();
    first.exit(0);
    second.process.kill.mockImplementation(() => undefined);
    jest.advanceTimersByTime(9_000);
    expect(second.process.kill).toHaveBeenCalledWith('SIGKILL');
    jest.advanceTimersByTime(1_999);
    expect(await settled(stopping)).toBe(false);
    jest.advanceTimersByTime(1);
    expect(await settled(stopping)).toBe(true);
  });

  it('does not replace workers that exit during the stop', async () => {
    jest.useFakeTimers();
    const stopping = supervisor.stop();
    for (const worker of fakeCluster.listed()) {
      worker.exit(0);
      worker.disconnect();
    }
    jest.advanceTimersByTime(60_000);
    expect(fakeCluster.fork).toHaveBeenCalledTimes(2);
    expect(await settled(stopping)).toBe(true);
  });
});
