import { randomUUID } from 'node:crypto';
import { StoreHub } from '../../cluster/store-hub';
import { conversationRepositoryContract } from '../../../test/contracts/conversation-repository.contract';
import { StoreError } from '../conversation.errors';
import { InMemoryConversationRepository } from './in-memory-conversation.repository';
import { IpcConversationRepository } from './ipc-conversation.repository';
import { MessagePort } from './store-ipc.protocol';

type Listener = (message: unknown) => void;

/**
 * A worker-side port wired to a StoreHub in this process. Messages are JSON round-tripped and
 * delivered on a later tick, as node:cluster's IPC channel does.
 */
function loopback(hub: StoreHub | null): MessagePort & { disconnect(): void } {
  const listeners = new Set<Listener>();
  const closeListeners = new Set<() => void>();
  return {
    send(message) {
      const wire = JSON.parse(JSON.stringify(message)) as unknown;
      setImmediate(() =>
        hub?.handle(wire, (reply) => {
          const back = JSON.parse(JSON.stringify(reply)) as unknown;
          setImmediate(() => listeners.forEach((listener) => listener(back)));
        }),
      );
    },
    onMessage(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    onClose(listener) {
      closeListeners.add(listener);
      return () => closeListeners.delete(listener);
    },
    disconnect() {
      closeListeners.forEach((listener) => listener());
    },
  };
}

conversationRepositoryContract('IPC to the primary', async () => {
  const repository = new IpcConversationRepository(
    loopback(new StoreHub(new InMemoryConversationRepository())),
    2_000,
  );
  return { repository, teardown: async () => repository.close() };
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
    const pending = repository.count().catch((e: unknown) => e);
    port.disconnect();
    expect(await pending).toMatchObject({ code: 'store_unavailable' });
    expect(await repository.count().catch((e: unknown) => e)).toMatchObject({
      code: 'store_unavailable',
    });
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
    expect(await repository.count()).toBe(3);
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
