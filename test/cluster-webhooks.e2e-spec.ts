import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ServerProcess, spawnServers } from './utils/spawn-server';
import { eventually, useReceivers } from './utils/webhook-receiver';
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
 * Webhooks on the in-memory store in cluster mode (built server, WORKERS=2): the primary
 * keeps the endpoints and the queue and sends; the workers reach it over IPC. Every request
 * opens a fresh connection, so the primary spreads them over both workers.
 */
describe('Webhooks in cluster mode (in memory, WORKERS=2, built server)', () => {
  jest.setTimeout(90_000);
  const receiver = useReceivers();

  describe('one server', () => {
    let server: ServerProcess;
    beforeAll(async () => {
      [server] = await spawnServers([{ ...FAST_WEBHOOKS, WORKERS: '2' }]);
    }, 60_000);
    afterAll(async () => {
      await server?.stop();
    }, 25_000);

    it('delivers each change made through either worker once, verified', async () => {
      expect(server.workerPids()).toHaveLength(2);
      const r = await receiver();
      const ep = await createEndpoint(server, r.url);
      const expected: string[] = [];
      // 8 conversations × (create + 6 posts), each request on its own connection.
      await Promise.all(
        Array.from({ length: 8 }, async (_, c) => {
          const id = await createConversation(server);
          const life = await lifeOf(server, id);
          expected.push(changeId(id, life, 'created'));
          for (let m = 0; m < 6; m++) {
            const posted = await postMessage(server, id, `c${c} m${m}`);
            expect(posted.status).toBe(201);
            expected.push(changeId(id, life, posted.body.seq));
          }
        }),
      );
      await eventually(() => r.received.length >= expected.length, 10_000, 'every change');
      await new Promise((resolve) => setTimeout(resolve, 200)); // nothing more comes
      expect(r.ids().sort()).toEqual([...expected].sort()); // each once
      expect(unverified(r, ep.secret)).toEqual([]);
      expect((await call(server, 'DELETE', `/api/webhooks/${ep.id}`)).status).toBe(200);
    });

    it('answers GET, PATCH and DELETE of an endpoint alike through every worker', async () => {
      const r = await receiver();
      const ep = await createEndpoint(server, r.url, ['message.*']);
      const reads = async () =>
        Promise.all(
          Array.from({ length: 12 }, () => call(server, 'GET', `/api/webhooks/${ep.id}`)),
        );

      const before = await reads();
      expect(before.map((res) => res.status)).toEqual(Array(12).fill(200));
      expect(new Set(before.map((res) => JSON.stringify(res.body))).size).toBe(1);
      expect(before[0].body).toMatchObject({ id: ep.id, url: r.url, events: ['message.*'] });
      expect(before[0].body).not.toHaveProperty('secret');

      const patched = await call(server, 'PATCH', `/api/webhooks/${ep.id}`, {
        description: 'CRM sync',
        events: ['conversation.created'],
      });
      expect(patched.status).toBe(200);
      const after = await reads();
      expect(after.map((res) => res.body)).toEqual(Array(12).fill(patched.body));
      expect(patched.body).toMatchObject({
        description: 'CRM sync',
        events: ['conversation.created'],
      });
      const lists = await Promise.all(
        Array.from({ length: 6 }, () =>
          call<{ webhooks: { id: string }[] }>(server, 'GET', '/api/webhooks'),
        ),
      );
      for (const list of lists) {
        expect(list.body.webhooks.map((w) => w.id)).toEqual([ep.id]);
      }

      expect((await call(server, 'DELETE', `/api/webhooks/${ep.id}`)).status).toBe(200);
      const gone = await reads();
      expect(gone.map((res) => res.status)).toEqual(Array(12).fill(404));
      expect(gone.map((res) => res.body.code)).toEqual(Array(12).fill('webhook_not_found'));
      // Nothing is queued for it any more.
      await createConversation(server);
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(r.received).toEqual([]);
    });
  });

  describe('SNAPSHOT_PATH', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'chat-webhooks-snapshot-'));
    const file = path.join(dir, 'store.jsonl');
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it('keeps the endpoint, its secret and the pending deliveries across a graceful restart', async () => {
      // Retries a second apart: the deliveries are still pending when the server stops.
      const env = {
        ...FAST_WEBHOOKS,
        WORKERS: '2',
        SNAPSHOT_PATH: file,
        WEBHOOK_RETRY_SCHEDULE: '1,1,1',
      };
      const [first] = await spawnServers([env]);
      const r = await receiver();
      const port = r.port;
      const ep = await createEndpoint(first, r.url);
      await r.stop(); // down: every first attempt fails
      const expected: string[] = [];
      const id = await createConversation(first);
      const life = await lifeOf(first, id);
      expected.push(changeId(id, life, 'created'));
      for (let m = 0; m < 5; m++) {
        const posted = await postMessage(first, id, `m${m}`);
        expect(posted.status).toBe(201);
        expected.push(changeId(id, life, posted.body.seq));
      }
      await eventually(
        async () => {
          const log = await call<{ deliveries: { attempts: unknown[] }[] }>(
            first,
            'GET',
            `/api/webhooks/${ep.id}/deliveries?status=pending`,
          );
          return (
            log.body.deliveries.length === expected.length &&
            log.body.deliveries.every((d) => d.attempts.length >= 1)
          );
        },
        5_000,
        'a failed first attempt of each delivery',
      );

      const { code } = await first.stop('SIGTERM');
      expect(code).toBe(0);
      expect(first.lines(/Wrote 1 conversation\(s\) and \d+ webhook line\(s\)/)).toHaveLength(1);
      expect(statSync(file).mode & 0o777).toBe(0o600);
      // Secrets are in the file, never in the log.
      expect(first.output()).not.toContain(ep.secret);

      await r.restart(port);
      const startedAt = Date.now();
      const [second] = await spawnServers([env]);
      try {
        expect(second.lines(/Restored 1 conversation\(s\) and \d+ webhook line\(s\)/)).toHaveLength(
          1,
        );
        await eventually(
          () => new Set(r.ids()).size >= expected.length,
          10_000,
          'the pending deliveries',
        );
        expect([...new Set(r.ids())].sort()).toEqual([...expected].sort());
        expect(r.received.every((x) => x.at >= startedAt)).toBe(true);
        // The endpoint kept its secret: the original one verifies.
        expect(unverified(r, ep.secret)).toEqual([]);
        const restored = await call(second, 'GET', `/api/webhooks/${ep.id}`);
        expect(restored.body).toMatchObject({ id: ep.id, url: r.url, status: 'enabled' });
        // The receiver records a request before it answers: the log settles just after.
        const log = await eventually(async () => {
          const res = await call<{ deliveries: { status: string }[] }>(
            second,
            'GET',
            `/api/webhooks/${ep.id}/deliveries`,
          );
          return res.body.deliveries.some((d) => d.status === 'pending') ? null : res;
        }, 5_000);
        expect(log.body.deliveries.map((d) => d.status)).toEqual(
          Array(expected.length).fill('succeeded'),
        );
        expect(second.output()).not.toContain(ep.secret);
      } finally {
        await second.stop();
      }
    });

    it('saves attempts in flight at the stop as pending and sends them after the start', async () => {
      rmSync(file, { force: true });
      const env = {
        ...FAST_WEBHOOKS,
        WORKERS: '2',
        SNAPSHOT_PATH: file,
        WEBHOOK_TIMEOUT_MS: '20000',
      };
      const [first] = await spawnServers([env]);
      // Holds every request without answering until the server stops.
      let holding = true;
      const r = await receiver();
      r.answer = () => (holding ? new Promise<never>(() => undefined) : { status: 204 });
      const ep = await createEndpoint(first, r.url, ['conversation.created']);
      const id = await createConversation(first);
      const expected = changeId(id, await lifeOf(first, id), 'created');
      await eventually(() => r.inFlight === 1, 5_000, 'the attempt in flight');

      expect((await first.stop('SIGTERM')).code).toBe(0);
      expect(first.lines(/Wrote 1 conversation\(s\) and 2 webhook line\(s\)/)).toHaveLength(1);
      holding = false;
      const [second] = await spawnServers([env]);
      try {
        await eventually(() => r.received.length === 1, 10_000, 'the delivery re-sent');
        expect(r.received[0].id).toBe(expected);
        expect(r.verifiedWith(r.received[0], ep.secret)).toBe(true);
        const log = await eventually(async () => {
          const res = await call<{ deliveries: { status: string; attempts: unknown[] }[] }>(
            second,
            'GET',
            `/api/webhooks/${ep.id}/deliveries`,
          );
          return res.body.deliveries.some((d) => d.status === 'pending') ? null : res;
        }, 5_000);
        // The aborted attempt is not counted: the one that succeeded is the first.
        expect(log.body.deliveries).toEqual([
          expect.objectContaining({
            id: expected,
            status: 'succeeded',
            attempts: [expect.anything()],
          }),
        ]);
      } finally {
        await second.stop();
      }
    });
  });
});
