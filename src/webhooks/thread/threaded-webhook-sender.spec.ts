import { newSecret } from '../signature';
import type { WebhookEvent } from '../webhook.model';
import { ThreadedWebhookSender } from './threaded-webhook-sender';
import {
  eventually,
  startReceiver,
  verifies,
  type Receiver,
} from '../../../test/utils/recording-receiver';

/** ThreadedWebhookSender: attempts made in a worker thread, the per-endpoint cap kept there. */

function event(n: number): WebhookEvent {
  const id = `evt_thread_${n}`;
  return {
    id,
    type: 'message.created',
    at: Date.now(),
    body: JSON.stringify({ id, type: 'message.created', data: { n, text: 'héllo 👋' } }),
  };
}

const receivers: Receiver[] = [];
const senders: ThreadedWebhookSender[] = [];

async function receiver(...args: Parameters<typeof startReceiver>): Promise<Receiver> {
  const made = await startReceiver(...args);
  receivers.push(made);
  return made;
}

function sender(options: Partial<ConstructorParameters<typeof ThreadedWebhookSender>[0]> = {}) {
  const made = new ThreadedWebhookSender({
    timeoutMs: 5_000,
    allowPrivateNetworks: true,
    maxInFlight: 3,
    ...options,
  });
  senders.push(made);
  return made;
}

afterEach(async () => {
  senders.splice(0).forEach((s) => s.close());
  await Promise.all(receivers.splice(0).map((r) => r.close()));
});

describe('ThreadedWebhookSender', () => {
  // Each sender starts a thread that compiles its TypeScript first (under jest): slow on a busy
  // machine.
  jest.setTimeout(20_000);

  it('hands over about 100 ms of attempts per endpoint, at least the cap and at most 128 times it', () => {
    const threaded = sender();
    expect(threaded.handOverLimit(8, null)).toBe(128); // none timed yet
    expect(threaded.handOverLimit(8, 1)).toBe(800);
    expect(threaded.handOverLimit(8, 0.01)).toBe(1024);
    expect(threaded.handOverLimit(8, 50)).toBe(16);
    expect(threaded.handOverLimit(8, 15_000)).toBe(8); // a receiver that times out
  });

  it('recalls the attempts of a lane not on the wire; those handed over after go out', async () => {
    const held = await receiver(() => ({ status: 200, delayMs: 400 }));
    const quick = await receiver(() => ({ status: 204 }));
    const threaded = sender({ maxInFlight: 1 });
    const secret = newSecret();
    const onWire = threaded.send(held.url, event(1), [secret], undefined, 'ep');
    const queued = [2, 3].map((n) => threaded.send(held.url, event(n), [secret], undefined, 'ep'));
    const other = threaded.send(quick.url, event(9), [secret], undefined, 'other');
    await eventually(() => expect(held.received).toHaveLength(1));
    // One not yet crossed to the thread, recalled where it waits; one handed over after.
    const unsent = threaded.send(held.url, event(4), [secret], undefined, 'ep');
    threaded.recall('ep');
    const after = threaded.send(quick.url, event(5), [secret], undefined, 'ep');
    const recalled = await Promise.all([...queued, unsent]);
    expect(recalled.map((o) => o.recalled)).toEqual([true, true, true]);
    expect(recalled.every((o) => !o.ok && o.error === 'recalled')).toBe(true);
    expect(await onWire).toMatchObject({ ok: true, statusCode: 200 });
    expect(await other).toMatchObject({ ok: true, statusCode: 204 });
    expect(await after).toMatchObject({ ok: true, statusCode: 204 });
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(held.received.map((r) => r.id)).toEqual(['evt_thread_1']);
    expect(quick.received.map((r) => r.id).sort()).toEqual(['evt_thread_5', 'evt_thread_9']);
  });

  it('sends signed attempts a receiver verifies, with when each went on the wire', async () => {
    const hook = await receiver(() => ({ status: 204 }));
    const secret = newSecret();
    const one = sender();
    const before = Date.now();
    const outcomes = await Promise.all(
      [1, 2, 3, 4, 5].map((n) => one.send(hook.url, event(n), [secret], undefined, 'ep')),
    );
    for (const outcome of outcomes) {
      expect(outcome).toMatchObject({ ok: true, statusCode: 204, error: null });
      expect(outcome.startedAt).toBeGreaterThanOrEqual(before);
    }
    expect(hook.received.map((r) => r.id).sort()).toEqual(
      [1, 2, 3, 4, 5].map((n) => `evt_thread_${n}`).sort(),
    );
    for (const request of hook.received) {
      expect(verifies(secret, request)).toBe(true);
      expect(request.body).toBe(event(Number(request.id.split('_')[2])).body);
    }
  });

  it('keeps at most maxInFlight of a lane on the wire; another lane goes on beside it', async () => {
    const held = await receiver(() => ({ status: 200, delayMs: 300 }));
    const quick = await receiver(() => ({ status: 200 }));
    const threaded = sender({ maxInFlight: 3 });
    const secret = newSecret();
    const slow = Array.from({ length: 12 }, (_, n) =>
      threaded.send(held.url, event(n), [secret], undefined, 'held'),
    );
    // The first three are held for 300 ms: the other lane's ten are answered meanwhile.
    const fast = await Promise.all(
      Array.from({ length: 10 }, (_, n) =>
        threaded.send(quick.url, event(100 + n), [secret], undefined, 'quick'),
      ),
    );
    expect(fast.every((o) => o.ok)).toBe(true);
    expect(held.received.length).toBeLessThanOrEqual(3);
    const outcomes = await Promise.all(slow);
    expect(outcomes.every((o) => o.ok)).toBe(true);
    expect(held.received).toHaveLength(12);
    expect(held.maxConcurrent).toBe(3);
  });

  it('counts the timeout from the wire, not from the hand-over', async () => {
    // One at a time, each answered after 150 ms: the fourth waits 450 ms in the thread's queue,
    // longer than the 300 ms timeout, and still succeeds.
    const hook = await receiver(() => ({ status: 200, delayMs: 150 }));
    const threaded = sender({ maxInFlight: 1, timeoutMs: 300 });
    const outcomes = await Promise.all(
      [1, 2, 3, 4].map((n) => threaded.send(hook.url, event(n), [newSecret()], undefined, 'ep')),
    );
    expect(outcomes.map((o) => o.ok)).toEqual([true, true, true, true]);
    const starts = outcomes.map((o) => o.startedAt as number);
    expect(starts[3] - starts[0]).toBeGreaterThanOrEqual(400);
  });

  it('times out an attempt that gets no answer', async () => {
    const hook = await receiver(() => ({ status: 200, delayMs: 2_000 }));
    const outcome = await sender({ timeoutMs: 200 }).send(hook.url, event(1), [newSecret()]);
    expect(outcome).toMatchObject({ ok: false, statusCode: null, error: 'timeout' });
  });

  it('aborts attempts on the wire and queued, and the queued never reach the receiver', async () => {
    const hook = await receiver(() => ({ status: 200, delayMs: 2_000 }));
    const threaded = sender({ maxInFlight: 1 });
    const first = new AbortController();
    const second = new AbortController();
    const onWire = threaded.send(hook.url, event(1), [newSecret()], first.signal, 'ep');
    const queued = threaded.send(hook.url, event(2), [newSecret()], second.signal, 'ep');
    await eventually(() => expect(hook.received).toHaveLength(1));
    second.abort();
    first.abort();
    expect(await onWire).toMatchObject({ ok: false, error: 'aborted' });
    expect(await queued).toMatchObject({ ok: false, error: 'aborted' });
    // Given time, the queued one would have gone on the wire after the first was aborted.
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(hook.received.map((r) => r.id)).toEqual(['evt_thread_1']);
  });

  it('aborts an attempt in the same hand-over that brings it: it never goes out', async () => {
    const hook = await receiver(() => ({ status: 204 }));
    const threaded = sender();
    const aborted = new AbortController();
    const kept = threaded.send(hook.url, event(1), [newSecret()], undefined, 'ep');
    const dropped = threaded.send(hook.url, event(2), [newSecret()], aborted.signal, 'ep');
    aborted.abort(); // before the orders cross: both go in one message
    expect(await dropped).toMatchObject({ ok: false, error: 'aborted' });
    expect(await kept).toMatchObject({ ok: true, statusCode: 204 });
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(hook.received.map((r) => r.id)).toEqual(['evt_thread_1']);
  });

  it('refuses private addresses in the thread unless allowed', async () => {
    const hook = await receiver(() => ({ status: 204 }));
    const outcome = await sender({ allowPrivateNetworks: false }).send(hook.url, event(1), [
      newSecret(),
    ]);
    expect(outcome.ok).toBe(false);
    expect(outcome.error).toMatch(/^address refused/);
    expect(hook.received).toHaveLength(0);
  });

  it('ends what a dead thread held as an error, and starts a new thread for the next', async () => {
    const hook = await receiver(() => ({ status: 200, delayMs: 2_000 }));
    const threaded = sender();
    const held = threaded.send(hook.url, event(1), [newSecret()], undefined, 'ep');
    await eventually(() => expect(hook.received).toHaveLength(1));
    const worker = (threaded as unknown as { worker: { terminate(): Promise<number> } }).worker;
    await worker.terminate();
    expect(await held).toMatchObject({ ok: false, error: 'sender thread stopped' });
    hook.answer(() => ({ status: 204 }));
    expect(await threaded.send(hook.url, event(2), [newSecret()])).toMatchObject({
      ok: true,
      statusCode: 204,
    });
  });

  it('ends what it holds as aborted on close, and sends nothing after', async () => {
    const hook = await receiver(() => ({ status: 200, delayMs: 2_000 }));
    const threaded = sender();
    const held = threaded.send(hook.url, event(1), [newSecret()]);
    await eventually(() => expect(hook.received).toHaveLength(1));
    threaded.close();
    expect(await held).toMatchObject({ ok: false, error: 'aborted' });
    expect(await threaded.send(hook.url, event(2), [newSecret()])).toMatchObject({
      ok: false,
      error: 'aborted',
    });
    expect(hook.received).toHaveLength(1);
  });
});
