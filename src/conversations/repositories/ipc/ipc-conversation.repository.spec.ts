import { randomUUID } from 'node:crypto';
import { StoreHub } from '../../../cluster/store-hub';
import {
  conversationRepositoryContract,
  withPeer,
} from '../../../../test/contracts/conversation-repository.contract';
import { rateLimitStoreContract } from '../../../../test/contracts/rate-limit-store.contract';
import { StoreError } from '../../../common/errors/store-error';
import { InMemoryConversationRepository } from '../memory/in-memory-conversation.repository';
import { InMemoryRateLimitStore } from '../../../access/rate-limits/memory/in-memory-rate-limit.store';
import { IpcConversationRepository } from './ipc-conversation.repository';
import { IpcRateLimitStore } from '../../../access/rate-limits/ipc/ipc-rate-limit.store';
import { MessagePort } from '../../../cluster/message-port';
import { loopback } from '../../../../test/utils/loopback';

conversationRepositoryContract('IPC to the primary', async () => {
  const hub = new StoreHub(new InMemoryConversationRepository());
  // Two workers of one primary.
  const repository = new IpcConversationRepository(loopback(hub), 2_000);
  const peer = new IpcConversationRepository(loopback(hub), 2_000);
  return withPeer(repository, peer, async (worker) => worker.close());
});

rateLimitStoreContract('IPC to the primary', async () => {
  // As in a worker: the rate-limit store shares the conversation store's channel.
  const repository = new IpcConversationRepository(
    loopback(new StoreHub(new InMemoryConversationRepository(), new InMemoryRateLimitStore())),
    2_000,
  );
  return {
    store: new IpcRateLimitStore(repository.channel),
    teardown: async () => repository.close(),
  };
});

describe('IpcConversationRepository failures', () => {
  const conversation = () => ({ id: randomUUID(), now: 1, maxConversations: 10 });

  it('fails a call with store_unavailable when the primary does not answer in time', async () => {
    const repository = new IpcConversationRepository(loopback(null), 50);
    const error = await repository.createConversation(conversation()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StoreError);
    expect((error as StoreError).code).toBe('store_unavailable');
    repository.close();
  });

  it('fails pending and later calls when the channel closes', async () => {
    const port = loopback(null);
    const repository = new IpcConversationRepository(port, 10_000);
    const pending = repository.stats().catch((e: unknown) => e);
    port.disconnect();
    expect(await pending).toMatchObject({ code: 'store_unavailable' });
    expect(await repository.stats().catch((e: unknown) => e)).toMatchObject({
      code: 'store_unavailable',
    });
  });

  it('tells watchers of a gap when the channel closes, and their reads then fail', async () => {
    const port = loopback(new StoreHub(new InMemoryConversationRepository()));
    const repository = new IpcConversationRepository(port, 2_000);
    const { id } = await repository.createConversation(conversation());
    const seen: string[] = [];
    const watch = repository.watch(id, {
      change: (change) => seen.push(String(change.seq)),
      gap: () => seen.push('gap'),
    });
    await watch.ready;
    port.disconnect();
    expect(seen).toEqual(['gap']);
    expect(await repository.changesAfter(id, 0).catch((e: unknown) => e)).toMatchObject({
      code: 'store_unavailable',
    });
    // A watch made after the close is refused.
    const late = repository.watch(id, { change: () => undefined, gap: () => undefined });
    expect(await late.ready.catch((e: unknown) => e)).toMatchObject({ code: 'store_unavailable' });
    watch.stop();
  });

  it('sends the calls of one event-loop turn as one batch', async () => {
    const hub = new StoreHub(new InMemoryConversationRepository());
    const port = loopback(hub);
    const sent: unknown[] = [];
    const send = port.send.bind(port);
    port.send = (message) => {
      sent.push(message);
      send(message);
    };
    const repository = new IpcConversationRepository(port, 2_000);
    await Promise.all([1, 2, 3].map(() => repository.createConversation(conversation())));
    expect(sent).toHaveLength(1);
    expect((sent[0] as { calls: unknown[] }).calls).toHaveLength(3);
    expect((await repository.stats()).conversations).toBe(3);
    repository.close();
  });

  it('sends a long history in several small messages and puts it back together', async () => {
    const store = new InMemoryConversationRepository();
    const port = loopback(new StoreHub(store));
    // Sizes as they arrive, before the repository takes the messages apart.
    const sizes: number[] = [];
    port.onMessage((message) => sizes.push(JSON.stringify(message).length));
    const repository = new IpcConversationRepository(port, 2_000);
    const { id } = await repository.createConversation(conversation());
    for (let i = 0; i < 400; i++) {
      await repository.appendMessage(id, {
        id: randomUUID(),
        sender: 'customer',
        content: `${i} ${'x'.repeat(200)}`,
        timestamp: i,
        now: 1,
        maxMessages: 1_000,
      });
    }
    sizes.length = 0;
    const history = await repository.getConversation(id);
    const direct = await store.getConversation(id);
    expect(history?.messagesJson.join('')).toBe(direct?.messagesJson.join(''));
    // Every message on the channel stayed small.
    expect(sizes.length).toBeGreaterThan(2);
    expect(Math.max(...sizes)).toBeLessThan(64 * 1024);
    repository.close();
  });

  it('serves an unchanged history from its copy, and fetches it again once it changes', async () => {
    const store = new InMemoryConversationRepository();
    const port = loopback(new StoreHub(store));
    const sent: { calls: { op: string }[] }[] = [];
    const send = port.send.bind(port);
    port.send = (message) => {
      sent.push(message as { calls: { op: string }[] });
      send(message);
    };
    const repository = new IpcConversationRepository(port, 2_000);
    const { id } = await repository.createConversation(conversation());
    const post = (content: string) =>
      repository.appendMessage(id, {
        id: randomUUID(),
        sender: 'agent',
        content,
        timestamp: 1,
        now: 1,
        maxMessages: 10,
      });
    await post('first');
    const first = await repository.getConversation(id);
    const again = await repository.getConversation(id);
    expect(again).toEqual(first);
    expect(sent.at(-1)?.calls[0].op).toBe('getConversationIfChanged');

    await post('second');
    const changed = await repository.getConversation(id);
    expect(changed?.messageCount).toBe(2);
    expect(JSON.parse(changed?.messagesJson.join('') ?? '[]')).toHaveLength(2);

    await store.evictInactive(10);
    expect(await repository.getConversation(id)).toBeNull();
    repository.close();
  });

  it('holds calls while two batches are unanswered and sends them together after', async () => {
    const answers: (() => void)[] = [];
    const hub = new StoreHub(new InMemoryConversationRepository());
    const listeners = new Set<(message: unknown) => void>();
    const batches: unknown[] = [];
    const port: MessagePort = {
      send(message) {
        batches.push(message);
        // Answered only when the test says so.
        answers.push(() =>
          hub.handle(JSON.parse(JSON.stringify(message)), (reply) =>
            listeners.forEach((listener) => listener(JSON.parse(JSON.stringify(reply)))),
          ),
        );
      },
      onMessage(listener) {
        listeners.add(listener);
        return () => listeners.delete(listener);
      },
      onClose: () => () => undefined,
    };
    const repository = new IpcConversationRepository(port, 2_000);
    const tick = () => new Promise((resolve) => setImmediate(resolve));
    const results: Promise<unknown>[] = [repository.stats()];
    await tick();
    results.push(repository.stats());
    await tick();
    for (let i = 0; i < 5; i++) {
      results.push(repository.stats());
    }
    await tick();
    expect(batches).toHaveLength(2);
    answers.shift()?.();
    await tick();
    await tick();
    expect(batches).toHaveLength(3);
    expect((batches[2] as { calls: unknown[] }).calls).toHaveLength(5);
    answers.splice(0).forEach((answer) => answer());
    expect(await Promise.all(results)).toEqual(
      Array(7).fill({ conversations: 0, messages: 0, bytes: 0 }),
    );
    repository.close();
  });

  it('refuses an operation outside the port', async () => {
    const hub = new StoreHub(new InMemoryConversationRepository());
    const replies: unknown[] = [];
    hub.handle({ ch: 'chat:store', calls: [{ id: 7, op: 'constructor', args: [] }] }, (batch) =>
      replies.push(batch),
    );
    await new Promise((resolve) => setImmediate(resolve));
    expect(replies).toEqual([
      { ch: 'chat:store', replies: [{ id: 7, ok: false, code: 'store_unavailable' }] },
    ]);
  });
});
