import { randomUUID } from 'node:crypto';
import { describeWithRedisCluster } from './utils/redis-cluster';
import { ServerProcess, spawnServers } from './utils/spawn-server';
import { eventually, WebhookReceiver } from './utils/webhook-receiver';
import {
  call,
  changeId,
  createConversation,
  createEndpoint,
  FAST_WEBHOOKS,
  lifeOf,
  postMessage,
  unverified,
} from './utils/webhook-server';

/**
 * Webhooks on a Redis Cluster of the suite's own (three masters, three replicas) with two
 * instances (built servers): every change delivered and verified, and each endpoint's queue in
 * one slot (its keys share the `{wh:<id>}` hash tag, as BullMQ's scripts need on a cluster).
 */
describeWithRedisCluster('Webhooks on Redis Cluster', (cluster) => {
  // Nested: its servers stop (afterAll) before the cluster does.
  describe('two instances (WORKERS=2 and WORKERS=0), built servers', () => {
    jest.setTimeout(60_000);
    const prefix = `test:${randomUUID().slice(0, 8)}:`;
    let servers: ServerProcess[] = [];
    const receivers: WebhookReceiver[] = [];

    beforeAll(async () => {
      const env = {
        ...FAST_WEBHOOKS,
        STORE: 'redis',
        REDIS_CLUSTER_NODES: cluster().seeds,
        REDIS_KEY_PREFIX: prefix,
      };
      servers = await spawnServers([
        { ...env, WORKERS: '2' },
        { ...env, WORKERS: '0' },
      ]);
    }, 60_000);
    afterAll(async () => {
      await Promise.all(servers.map((server) => server.stop()));
      await Promise.all(receivers.map((r) => r.stop()));
    }, 30_000);

    /** Every key under `pattern` on every master (SCAN each: a cluster has no global KEYS). */
    async function keysMatching(pattern: string): Promise<string[]> {
      const found = new Set<string>();
      for (const node of await cluster().masters()) {
        const client = node.client();
        try {
          let cursor = '0';
          do {
            const [next, keys] = await client.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
            keys.forEach((key) => found.add(key));
            cursor = next;
          } while (cursor !== '0');
        } finally {
          client.disconnect();
        }
      }
      return [...found];
    }

    it('delivers every change made on either instance, verified; a 500 is retried', async () => {
      const [a, b] = servers;
      const r = await WebhookReceiver.start();
      receivers.push(r);
      // The first attempt of each delivery fails: retried on the short schedule.
      const seen = new Set<string>();
      r.answer = (_req, received) => {
        const first = !seen.has(received.id);
        seen.add(received.id);
        return { status: first ? 500 : 204 };
      };
      const ep = await createEndpoint(a, r.url);
      const expected: string[] = [];
      await Promise.all(
        Array.from({ length: 6 }, async (_, c) => {
          const id = await createConversation(c % 2 === 0 ? a : b);
          const life = await lifeOf(b, id);
          expected.push(changeId(id, life, 'created'));
          for (let m = 0; m < 6; m++) {
            const posted = await postMessage(m % 2 === 0 ? b : a, id, `c${c} m${m}`);
            expect(posted.status).toBe(201);
            expected.push(changeId(id, life, posted.body.seq));
          }
        }),
      );
      // Succeeded, each: the log on either instance says so.
      const succeeded = async (server: ServerProcess) =>
        (
          await call<{ deliveries: { id: string }[] }>(
            server,
            'GET',
            `/api/webhooks/${ep.id}/deliveries?status=succeeded&limit=100`,
          )
        ).body.deliveries.map((d) => d.id);
      await eventually(
        async () => (await succeeded(b)).length === expected.length,
        20_000,
        'every change delivered',
      );
      expect((await succeeded(a)).sort()).toEqual([...expected].sort());
      expect([...new Set(r.ids())].sort()).toEqual([...expected].sort());
      // A 500 then a 2xx each, every request verified.
      const twice = expected.filter((id) => r.ids().filter((x) => x === id).length >= 2);
      expect(twice).toHaveLength(expected.length);
      expect(unverified(r, ep.secret)).toEqual([]);

      // Every key of the endpoint's queue hashes to one slot.
      const keys = await keysMatching(`${prefix}{wh:${ep.id}}*`);
      expect(keys.length).toBeGreaterThanOrEqual(5);
      const client = cluster().client();
      try {
        const slots = new Set(
          await Promise.all(keys.map((key) => client.cluster('KEYSLOT', key) as Promise<number>)),
        );
        expect(slots.size).toBe(1);
      } finally {
        client.disconnect();
      }
      expect((await call(b, 'DELETE', `/api/webhooks/${ep.id}`)).status).toBe(200);
    });
  });
});
