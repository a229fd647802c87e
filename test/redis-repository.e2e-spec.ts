import { randomUUID } from 'node:crypto';
import { connectRedis } from '../src/conversations/repositories/redis/redis-client';
import {
  RedisConversationRepository,
  RedisStoreOptions,
} from '../src/conversations/repositories/redis/redis-conversation.repository';
import { RedisKeys } from '../src/conversations/repositories/redis/redis-keys';
import { RedisRateLimitStore } from '../src/access/rate-limits/redis/redis-rate-limit.store';
import {
  conversationRepositoryContract,
  withPeer,
} from './contracts/conversation-repository.contract';
import { rateLimitStoreContract } from './contracts/rate-limit-store.contract';
import { describeWithRedis } from './utils/redis';

const LIMITS = { maxConversations: 1_000, maxMessages: 1_000 };

describeWithRedis('Redis store', (redis) => {
  /** A repository on a key prefix of its own. */
  async function open(prefix = redis().newPrefix(), options: RedisStoreOptions = {}) {
    const client = await connectRedis(redis().url, 2_000);
    return {
      prefix,
      repository: new RedisConversationRepository(client, prefix, redis().url, options),
    };
  }

  it('leaves no key of an evicted conversation behind, and lays keys out by hash tag', async () => {
    const { prefix, repository } = await open();
    try {
      const ids: string[] = [];
      for (let i = 0; i < 30; i++) {
        const { id } = await repository.createConversation({
          id: randomUUID(),
          now: 1_000,
          ...LIMITS,
        });
        ids.push(id);
        const message = await repository.appendMessage(id, {
          id: randomUUID(),
          sender: 'agent',
          content: `hello ${i}`,
          timestamp: 1_000,
          now: 1_000,
          ...LIMITS,
        });
        if (i % 2 === 0) {
          await repository.deleteMessage(id, message.id, 1_000);
        }
      }
      const keys = await redis().keys(prefix);
      expect(keys).toEqual(
        expect.arrayContaining([
          `${prefix}{meta}`,
          `${prefix}{${ids[0]}}:conv`,
          `${prefix}{${ids[1]}}:msgs`,
          `${prefix}{${ids[1]}}:ids`,
        ]),
      );
      const tags = new Set(keys.map((key) => /\{([^}]+)\}/.exec(key)?.[1]));
      expect([...tags].filter((tag) => tag?.startsWith('activity:')).length).toBeGreaterThan(1);
      expect(await repository.stats()).toEqual({ conversations: 30, messages: 15 });

      expect(await repository.evictInactive(2_000)).toBe(30);

      expect(await redis().keys(prefix)).toEqual([`${prefix}{meta}`]);
      expect(await repository.stats()).toEqual({ conversations: 0, messages: 0 });
    } finally {
      await repository.onApplicationShutdown();
    }
  });

  it('leaves no trace of a conversation refused for capacity', async () => {
    const { prefix, repository } = await open();
    try {
      await repository.createConversation({ id: randomUUID(), now: 1_000, maxConversations: 1 });
      const refused = randomUUID();
      await expect(
        repository.createConversation({ id: refused, now: 1_000, maxConversations: 1 }),
      ).rejects.toMatchObject({ code: 'capacity_exceeded' });

      expect((await redis().keys(prefix)).filter((key) => key.includes(refused))).toEqual([]);
      const indexed = await Promise.all(
        Array.from({ length: 16 }, (_, b) =>
          redis().admin.zscore(`${prefix}{activity:${b}}`, refused),
        ),
      );
      expect(indexed.every((score) => score === null)).toBe(true);
      expect(await repository.stats()).toEqual({ conversations: 1, messages: 0 });
    } finally {
      await repository.onApplicationShutdown();
    }
  });

  it('gives back the capacity place of every keyed create retried after 503 replication_timeout', async () => {
    // No replica: each WAIT times out after the script ran, as with a stalled replica.
    const { prefix, repository: stalled } = await open(undefined, {
      waitReplicas: 1,
      waitTimeoutMs: 50,
    });
    const { repository } = await open(prefix);
    const maxConversations = 100;
    try {
      const ids = [randomUUID(), randomUUID()];
      for (const id of ids) {
        const idempotency = { key: `k-${id}`, fingerprint: 'fp', ttlMs: 60_000 };
        for (let attempt = 0; attempt < 5; attempt++) {
          await expect(
            stalled.createConversation({ id, now: 1_000, maxConversations, idempotency }),
          ).rejects.toMatchObject({ code: 'replication_timeout' });
        }
      }
      const standing = await Promise.all(ids.map((id) => repository.getConversation(id)));
      expect(standing.map((history) => history?.id)).toEqual(ids);
      expect(await repository.stats()).toEqual({ conversations: 2, messages: 0 });
      // With room for three, the third place is free for a new conversation.
      await expect(
        repository.createConversation({ id: randomUUID(), now: 1_000, maxConversations: 3 }),
      ).resolves.toMatchObject({ messageCount: 0 });
    } finally {
      await stalled.onApplicationShutdown();
      await repository.onApplicationShutdown();
    }
  });

  it('sets the conversation count from the activity index after each sweep', async () => {
    const { prefix, repository } = await open();
    const keys = new RedisKeys(prefix);
    try {
      for (const now of [1_000, 1_000, 1_000, 9_000, 9_000]) {
        await repository.createConversation({ id: randomUUID(), now, ...LIMITS });
      }
      // What processes that died mid-create leave: places taken for nothing, and an index
      // entry for a conversation never made.
      await redis().admin.hincrby(keys.meta, 'conversations', 4);
      const never = randomUUID();
      await redis().admin.zadd(keys.activity(never), 1_000, never);

      expect(await repository.evictInactive(500)).toBe(0);
      expect((await repository.stats()).conversations).toBe(6); // 5, and the entry for nothing

      expect(await repository.evictInactive(5_000)).toBe(3);
      expect(await repository.stats()).toEqual({ conversations: 2, messages: 0 });
    } finally {
      await repository.onApplicationShutdown();
    }
  });

  it('reads a customer token stored before the anonymous mark as anonymous', async () => {
    const { prefix, repository } = await open();
    try {
      const id = randomUUID();
      await repository.createConversation({
        id,
        now: 1_000,
        ...LIMITS,
        customerToken: { hash: 'hash-1', anonymous: false },
      });
      const conv = `${prefix}{${id}}:conv`;
      expect(await redis().admin.hget(conv, 'tm')).toBe('k');
      await redis().admin.hdel(conv, 'tm'); // as a record made before the mark
      expect(await repository.customerToken(id)).toEqual({ hash: 'hash-1', anonymous: true });
    } finally {
      await repository.onApplicationShutdown();
    }
  });

  it('does not sweep while another instance holds the sweeper lock', async () => {
    const { prefix, repository } = await open();
    try {
      for (let i = 0; i < 10; i++) {
        await repository.createConversation({ id: randomUUID(), now: 1_000, ...LIMITS });
      }
      const lock = `${prefix}{meta}:sweeper`;
      await redis().admin.set(lock, 'another-instance', 'PX', 60_000);

      expect(await repository.evictInactive(2_000)).toBe(0);
      expect(await repository.stats()).toEqual({ conversations: 10, messages: 0 });
      expect(await redis().admin.get(lock)).toBe('another-instance');

      await redis().admin.del(lock);
      expect(await repository.evictInactive(2_000)).toBe(10);
      expect(await redis().admin.exists(lock)).toBe(0);
    } finally {
      await repository.onApplicationShutdown();
    }
  });

  it('subscribes again after its subscriber connection is killed, then tells watchers of the gap', async () => {
    const { prefix, repository } = await open();
    try {
      const { id } = await repository.createConversation({ id: randomUUID(), now: 1, ...LIMITS });
      const seen: string[] = [];
      const watch = repository.watch(id, {
        change: (change) => seen.push(String(change.seq)),
        gap: () => seen.push('gap'),
      });
      await watch.ready;
      const list = String(await redis().admin.client('LIST'));
      const subscriber = list.split('\n').find((line) => line.includes(` name=${prefix}sub `));
      await redis().admin.client('KILL', 'ID', /\bid=(\d+)/.exec(subscriber ?? '')?.[1] ?? '');

      const deadline = Date.now() + 5_000;
      while (!seen.includes('gap') && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      expect(seen).toEqual(['gap']);
      // Told once subscribed again: a change made now is told.
      await repository.appendMessage(id, {
        id: randomUUID(),
        sender: 'agent',
        content: 'after the gap',
        timestamp: 1,
        now: 1,
        ...LIMITS,
      });
      while (seen.length < 2 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      expect(seen).toEqual(['gap', '1']);
      watch.stop();
    } finally {
      await repository.onApplicationShutdown();
    }
  });

  conversationRepositoryContract('Redis', async () => {
    const { prefix, repository } = await open();
    // Another instance: a connection of its own on the same keys.
    const { repository: peer } = await open(prefix);
    return withPeer(repository, peer, (handle) => handle.onApplicationShutdown());
  });

  rateLimitStoreContract('Redis', async () => {
    // As in the app: on the conversation store's connection.
    const { repository } = await open();
    return {
      store: new RedisRateLimitStore(repository.connection),
      teardown: () => repository.onApplicationShutdown(),
    };
  });
});
