import { connectRedis } from '../src/conversations/repositories/redis/redis-client';
import { RedisStoreConnection } from '../src/conversations/repositories/redis/redis-connection';
import { RedisFanOut } from '../src/webhooks/redis/redis-fan-out';
import { RedisOutbox } from '../src/webhooks/redis/redis-outbox';
import { RedisWebhookStore } from '../src/webhooks/redis/redis-webhook.store';
import { webhookStoreContract } from './contracts/webhook-store.contract';
import { describeWithRedis, keysUnder } from './utils/redis';

/**
 * The WebhookStore contract on Redis: the store (endpoints, BullMQ queues), told changes
 * through the Redis outbox and its fan-out, as an instance's delivering process runs them.
 */
describeWithRedis('WebhookStore contract on Redis', (redis) => {
  webhookStoreContract('Redis (BullMQ)', async (settings, clock, sender) => {
    const prefix = redis().newPrefix();
    const client = await connectRedis(redis().url, 2_000);
    const connection = new RedisStoreConnection(client, prefix, redis().url, 2_000);
    const store = new RedisWebhookStore(connection, prefix, settings, sender, undefined, clock);
    const outbox = new RedisOutbox(connection, {
      wantsTranscripts: () => store.queues.wants('conversation.transcript'),
    });
    await store.start();
    const fanOut = new RedisFanOut(client, outbox.stream, store.queues, { blockMs: 50 });
    fanOut.start();
    return {
      store,
      sink: outbox,
      teardown: async () => {
        await fanOut.stop();
        await store.stop({ force: true });
        const keys = await keysUnder(client, prefix);
        if (keys.length > 0) {
          await client.del(...keys);
        }
        client.disconnect();
      },
    };
  });
});
