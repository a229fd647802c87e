import { describeWithRedis, useRedisInstances } from './utils/redis';
import { ServerProcess, spawnServers } from './utils/spawn-server';
import { eventually, useReceivers } from './utils/webhook-receiver';
import {
  call,
  changeId,
  createConversation,
  createEndpoint,
  differingDuplicates,
  FAST_WEBHOOKS,
  lifeOf,
  postMessage,
  unverified,
} from './utils/webhook-server';

/**
 * Webhooks on Redis with two instances of one deployment (built servers): one in cluster mode
 * (WORKERS=2: its workers write the outbox, its primary fans out and delivers), one single
 * process (WORKERS=0). Real receivers on 127.0.0.1; every delivery verified with the npm
 * `standardwebhooks` package.
 */

/**
 * A retry schedule of about 3 s in all (7 attempts): short enough to see a delivery fail,
 * long enough for a receiver to be down for a second and still get everything.
 */
const SCHEDULE = '0.05,0.1,0.2,0.4,0.8,1.6';

interface Delivery {
  id: string;
  status: string;
  attempts: { statusCode: number | null }[];
}

describeWithRedis('Webhooks on Redis (two instances, built servers)', (redis) => {
  jest.setTimeout(60_000);
  const receiver = useReceivers();

  describe('A (WORKERS=2) and B (WORKERS=0) on one Redis', () => {
    const env = { ...FAST_WEBHOOKS, WEBHOOK_RETRY_SCHEDULE: SCHEDULE };
    const servers = useRedisInstances(redis, [
      { ...env, WORKERS: '2' },
      { ...env, WORKERS: '0' },
    ]);
    const log = async (server: ServerProcess, endpoint: string, query = '') =>
      (
        await call<{ deliveries: Delivery[] }>(
          server,
          'GET',
          `/api/webhooks/${endpoint}/deliveries${query}`,
        )
      ).body.deliveries;
    const remove = async (server: ServerProcess, endpoint: string) =>
      expect((await call(server, 'DELETE', `/api/webhooks/${endpoint}`)).status).toBe(200);

    it('delivers every change made on either instance to an endpoint made on A, verified', async () => {
      const [a, b] = servers();
      expect(a.lines(/\[primary\].*Delivering webhooks from this process/)).toHaveLength(1);
      expect(b.lines(/Delivering webhooks from this process/)).toHaveLength(1);
      const r = await receiver();
      const ep = await createEndpoint(a, r.url);
      // B learns of the endpoint from the store: it lists it at once.
      const listed = await call<{ webhooks: { id: string }[] }>(b, 'GET', '/api/webhooks');
      expect(listed.body.webhooks.map((w) => w.id)).toContain(ep.id);

      const expected: string[] = [];
      await Promise.all(
        Array.from({ length: 6 }, async (_, c) => {
          const [maker, other] = c % 2 === 0 ? [b, a] : [a, b];
          const id = await createConversation(maker);
          const life = await lifeOf(other, id);
          expected.push(changeId(id, life, 'created'));
          for (let m = 0; m < 8; m++) {
            const posted = await postMessage(m % 2 === 0 ? a : b, id, `c${c} m${m}`);
            expect(posted.status).toBe(201);
            expected.push(changeId(id, life, posted.body.seq));
          }
          const read = await call(other, 'POST', `/api/conversations/${id}/read`, {
            sender: 'agent',
            seq: 8,
          });
          expect(read.status).toBe(200);
          expected.push(changeId(id, life, 9));
        }),
      );
      await eventually(() => r.received.length >= expected.length, 15_000, 'every change');
      await new Promise((resolve) => setTimeout(resolve, 300)); // nothing more comes
      expect(r.ids().sort()).toEqual([...expected].sort()); // each once
      expect(unverified(r, ep.secret)).toEqual([]);
      expect(r.ofType('conversation.read')).toHaveLength(6);
      await remove(b, ep.id);
    });

    it('a receiver down for a while gets everything once it is back', async () => {
      const [a, b] = servers();
      const r = await receiver();
      const port = r.port;
      const ep = await createEndpoint(b, r.url, ['message.created']);
      await r.stop();
      const id = await createConversation(a);
      const life = await lifeOf(a, id);
      const expected: string[] = [];
      for (let m = 0; m < 10; m++) {
        const posted = await postMessage(m % 2 === 0 ? a : b, id, `m${m}`);
        expect(posted.status).toBe(201);
        expected.push(changeId(id, life, posted.body.seq));
      }
      // Down for a second: each delivery has failed a few attempts by then.
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      const pending = await log(a, ep.id, '?status=pending');
      expect(pending).toHaveLength(10);
      expect(pending.every((d) => d.attempts.length >= 2)).toBe(true);
      await r.restart(port);
      await eventually(() => new Set(r.ids()).size === 10, 10_000, 'ten messages');
      expect([...new Set(r.ids())].sort()).toEqual([...expected].sort());
      expect(r.received).toHaveLength(10); // once each
      expect(unverified(r, ep.secret)).toEqual([]);
      await eventually(async () => (await log(b, ep.id, '?status=succeeded')).length === 10);
      await remove(a, ep.id);
    });

    it('retries 500s on the short schedule, with the same id and body', async () => {
      const [a, b] = servers();
      let failures = 2;
      const r = await receiver();
      r.answer = () => (failures-- > 0 ? { status: 500 } : { status: 200 });
      const ep = await createEndpoint(a, r.url, ['conversation.created']);
      await createConversation(b);
      await eventually(() => r.received.length === 3, 5_000, 'three attempts');
      expect(new Set(r.ids()).size).toBe(1);
      expect(new Set(r.received.map((x) => x.body)).size).toBe(1);
      expect(unverified(r, ep.secret)).toEqual([]);
      // 50 ms then 100 ms, ±20%, each after the previous attempt.
      const [first, second, third] = r.received.map((x) => x.at);
      expect(second - first).toBeGreaterThanOrEqual(35);
      expect(third - second).toBeGreaterThanOrEqual(75);
      expect(third - first).toBeLessThan(2_000);
      for (const server of [a, b]) {
        await eventually(async () => (await log(server, ep.id))[0]?.status === 'succeeded');
        const [delivery] = await log(server, ep.id);
        expect(delivery.attempts.map((x) => x.statusCode)).toEqual([500, 500, 200]);
      }
      await remove(a, ep.id);
    });

    it('410 disables the endpoint on both instances, and nothing more is queued', async () => {
      const [a, b] = servers();
      const r = await receiver();
      r.answer = () => ({ status: 410 });
      const ep = await createEndpoint(b, r.url, ['conversation.created']);
      await createConversation(a);
      for (const server of [a, b]) {
        await eventually(
          async () =>
            (await call<{ status: string }>(server, 'GET', `/api/webhooks/${ep.id}`)).body
              .status === 'disabled',
          5_000,
          'the endpoint disabled',
        );
        const res = await call(server, 'GET', `/api/webhooks/${ep.id}`);
        expect(res.body).toMatchObject({ status: 'disabled', disabledReason: 'gone' });
      }
      await createConversation(a);
      await createConversation(b);
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(r.received).toHaveLength(1);
      await remove(b, ep.id);
    });

    it('a rotation on B signs with both secrets on every instance', async () => {
      const [a, b] = servers();
      const r = await receiver();
      const ep = await createEndpoint(a, r.url, ['conversation.created']);
      const rotated = await call<{ secret: string }>(
        b,
        'POST',
        `/api/webhooks/${ep.id}/rotate-secret`,
      );
      expect(rotated.status).toBe(200);
      const secret = rotated.body.secret;
      expect(secret).not.toBe(ep.secret);
      // Each deliverer signs with the endpoint as it read it at most a second ago: the old
      // secret signs throughout; from then on, both do.
      for (let i = 0; i < 4; i++) {
        await createConversation(i % 2 === 0 ? a : b);
      }
      await eventually(() => r.received.length === 4, 5_000, 'four deliveries');
      await new Promise((resolve) => setTimeout(resolve, 1_100));
      for (let i = 0; i < 6; i++) {
        await createConversation(i % 2 === 0 ? a : b);
      }
      await eventually(() => r.received.length === 10, 5_000, 'ten deliveries');
      expect(unverified(r, ep.secret)).toEqual([]);
      for (const x of r.received.slice(4)) {
        expect(x.signature.split(' ')).toHaveLength(2);
        expect(r.verifiedWith(x, secret)).toBe(true);
      }
      await remove(a, ep.id);
    });

    it('logs, retries, recovers and tests through the API of either instance', async () => {
      const [a, b] = servers();
      const r = await receiver();
      r.answer = () => ({ status: 500 });
      const ep = await createEndpoint(a, r.url, ['conversation.created']);
      const since = Date.now();
      const ids = [await createConversation(a), await createConversation(b)];
      // Seven attempts each, about 3 s, then failed.
      await eventually(
        async () => (await log(b, ep.id, '?status=failed')).length === 2,
        10_000,
        'two failed deliveries',
      );
      const failed = await log(b, ep.id, '?status=failed');
      expect(failed.every((d) => d.attempts.length === 7)).toBe(true);
      expect(r.received).toHaveLength(14);

      // retry on A: one delivery, same id, sent again at once.
      r.answer = () => ({ status: 204 });
      const retried = await call(
        a,
        'POST',
        `/api/webhooks/${ep.id}/deliveries/${failed[0].id}/retry`,
      );
      expect(retried.status).toBe(202);
      await eventually(async () => (await log(b, ep.id, '?status=succeeded')).length === 1);
      expect(r.received.at(-1)?.id).toBe(failed[0].id);

      // recover on B: the other failed one.
      const recovered = await call<{ requeued: number }>(
        b,
        'POST',
        `/api/webhooks/${ep.id}/recover`,
        {
          since,
        },
      );
      expect(recovered.status).toBe(202);
      expect(recovered.body.requeued).toBe(1);
      await eventually(async () => (await log(a, ep.id, '?status=succeeded')).length === 2);
      expect(new Set(r.ids())).toEqual(new Set(failed.map((d) => d.id)));
      const lives = await Promise.all(ids.map((id) => lifeOf(a, id)));
      expect(new Set(r.ids())).toEqual(
        new Set(ids.map((id, i) => changeId(id, lives[i], 'created'))),
      );

      // test on B: a webhook.test event.
      const tested = await call<{ deliveryId: string }>(b, 'POST', `/api/webhooks/${ep.id}/test`);
      expect(tested.status).toBe(202);
      await eventually(() => r.ofType('webhook.test').length === 1);
      expect(r.ofType('webhook.test')[0].id).toBe(tested.body.deliveryId);
      expect(unverified(r, ep.secret)).toEqual([]);

      // Bad input gets its problem.
      const bad = await call(a, 'POST', `/api/webhooks/${ep.id}/recover`, { since: 'yesterday' });
      expect(bad.status).toBe(400);
      expect(bad.body).toMatchObject({ code: 'validation_failed' });
      const missing = await call(b, 'POST', `/api/webhooks/${ep.id}/deliveries/evt_nope/retry`);
      expect(missing.status).toBe(404);
      expect(missing.body).toMatchObject({ code: 'webhook_delivery_not_found' });
      await remove(b, ep.id);
    });
  });

  describe('SIGKILL of an instance during deliveries', () => {
    const shared = () => ({
      ...FAST_WEBHOOKS,
      STORE: 'redis',
      REDIS_URL: redis().url,
      // A dead process's jobs go back to waiting after lockDuration: max(2 × 500 ms, 1 s).
      WEBHOOK_TIMEOUT_MS: '500',
      WEBHOOK_RECONCILE_MS: '200',
    });
    let servers: ServerProcess[] = [];
    afterAll(async () => {
      await Promise.all(servers.map((server) => server.stop()));
    }, 30_000);

    it('delivers every acknowledged change, verified, duplicates alike', async () => {
      const env = { ...shared(), REDIS_KEY_PREFIX: redis().newPrefix() };
      const [a, b] = await spawnServers([
        { ...env, WORKERS: '2' },
        { ...env, WORKERS: '0' },
      ]);
      servers = [a, b];
      const r = await receiver();
      // A little slow, so that B holds attempts in flight when it is killed.
      r.answer = () => ({ status: 204, delayMs: 5 + Math.floor(Math.random() * 20) });
      const ep = await createEndpoint(a, r.url);

      const conversations: { id: string; life: string }[] = [];
      const acknowledged = new Set<string>();
      for (let c = 0; c < 10; c++) {
        const id = await createConversation(c % 2 === 0 ? a : b);
        const life = await lifeOf(a, id);
        conversations.push({ id, life });
        acknowledged.add(changeId(id, life, 'created'));
      }

      // 300 posts over both instances on 10 lanes; B is SIGKILLed at the 100th.
      let next = 0;
      let killed = false;
      let failed = 0;
      const lane = async () => {
        while (next < 300) {
          const i = next++;
          if (i === 100) {
            b.child.kill('SIGKILL');
            killed = true;
          }
          const { id, life } = conversations[i % conversations.length];
          try {
            const posted = await postMessage(i % 2 === 0 ? a : b, id, `post ${i}`);
            if (posted.status === 201) {
              acknowledged.add(changeId(id, life, posted.body.seq));
            } else {
              failed++;
            }
          } catch {
            failed++; // B is down: not acknowledged
          }
        }
      };
      await Promise.all(Array.from({ length: 10 }, lane));
      expect(killed).toBe(true);
      expect(await b.exited).toMatchObject({ signal: 'SIGKILL' });
      expect(failed).toBeGreaterThan(50);
      expect(acknowledged.size).toBeGreaterThan(150);

      // B back on its port: it writes and delivers again.
      const [again] = await spawnServers([{ ...env, WORKERS: '0' }], { port: b.port });
      servers.push(again);
      for (let i = 0; i < 20; i++) {
        const { id, life } = conversations[i % conversations.length];
        const posted = await postMessage(again, id, `after ${i}`);
        expect(posted.status).toBe(201);
        acknowledged.add(changeId(id, life, posted.body.seq));
      }

      const missing = () => [...acknowledged].filter((id) => !received.has(id));
      const received = new Set<string>();
      await eventually(
        () => {
          r.received.forEach((x) => received.add(x.id));
          return missing().length === 0;
        },
        45_000,
        'every acknowledged change delivered',
      ).catch((error: Error) => {
        throw new Error(
          `${error.message}: ${missing().length} missing, e.g. ${missing().slice(0, 5).join(' ')}`,
        );
      });
      expect(unverified(r, ep.secret)).toEqual([]);
      expect(differingDuplicates(r.received)).toEqual([]);

      // Changes B applied but never answered are delivered too (the reconcile pass queues
      // what was applied but not queued): every message stored.
      const stored = new Set<string>();
      for (const { id, life } of conversations) {
        const history = await call<{ messages: { seq: number }[] }>(
          a,
          'GET',
          `/api/conversations/${id}`,
        );
        history.body.messages.forEach((m) => stored.add(changeId(id, life, m.seq)));
      }
      await eventually(
        () => {
          r.received.forEach((x) => received.add(x.id));
          return [...stored].every((id) => received.has(id));
        },
        10_000,
        'every stored message delivered',
      ).catch((error: Error) => {
        const left = [...stored].filter((id) => !received.has(id));
        throw new Error(`${error.message}: ${left.join(' ')}`);
      });
      // Nothing was found lost past a replay buffer.
      for (const server of [a, again]) {
        expect(server.lines(/never queued for webhooks/)).toEqual([]);
      }
    });
  });
});
