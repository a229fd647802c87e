import { randomUUID } from 'node:crypto';
import { conversationRepositoryContract } from '../../../test/contracts/conversation-repository.contract';
import { InMemoryConversationRepository } from './in-memory-conversation.repository';

conversationRepositoryContract('in-memory', async () => ({
  repository: new InMemoryConversationRepository(),
  teardown: async () => undefined,
}));

describe('InMemoryConversationRepository eviction at scale', () => {
  it('yields to the event loop during a large sweep and evicts every expired conversation', async () => {
    const repository = new InMemoryConversationRepository();
    const total = 50_000;
    for (let i = 0; i < total; i++) {
      await repository.createConversation({
        id: randomUUID(),
        now: 1_000,
        maxConversations: total + 1,
      });
    }
    const live = await repository.createConversation({
      id: randomUUID(),
      now: 10_000,
      maxConversations: total + 1,
    });

    let ticksDuringSweep = 0;
    let sweeping = true;
    const tick = (): void => {
      if (sweeping) {
        ticksDuringSweep++;
        setImmediate(tick);
      }
    };
    setImmediate(tick);
    const evicted = await repository.evictInactive(5_000);
    sweeping = false;

    expect(evicted).toBe(total);
    expect((await repository.stats()).conversations).toBe(1);
    expect(await repository.getConversation(live.id)).not.toBeNull();
    // Other work ran between chunks while the sweep was in progress.
    expect(ticksDuringSweep).toBeGreaterThan(5);
  });
});
