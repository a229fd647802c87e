import { expectProblem } from '../utils/problem';
import {
  Delivery,
  expectInvalid,
  itRefusesOpenMode,
  itTakesAnApiKeyOnly,
  MALFORMED_WEBHOOK_IDS,
  UNKNOWN_WEBHOOK_ID,
  useWebhookApp,
} from '../utils/webhook-api';

const LIMIT_RULE = 'limit must be an integer from 1 to 100';
const STATUS_RULE = 'status must be pending, succeeded or failed';
const CURSOR_RULE = 'cursor must be a nextCursor of this route';

describe('GET /api/webhooks/{webhookId}/deliveries', () => {
  describe('API_KEYS set, WEBHOOK_ALLOW_PRIVATE_NETWORKS=true, retries in ms', () => {
    const { http, key, create, receiver, settled, failedDelivery, customerToken } = useWebhookApp();
    const log = (id: string, query = '') =>
      http()
        .get(`/api/webhooks/${id}/deliveries${query ? `?${query}` : ''}`)
        .set(key);
    const test = async (id: string) =>
      ((await http().post(`/api/webhooks/${id}/test`).set(key)).body as { deliveryId: string })
        .deliveryId;

    it('200 with an empty log for a new endpoint', async () => {
      const ep = await create();
      const res = await log(ep.id);
      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      expect(res.body).toEqual({ deliveries: [], nextCursor: null });
    });

    it('a delivery that succeeded: exactly its id, type, status, times and one attempt', async () => {
      const r = await receiver();
      const ep = await create({ url: r.url });
      const before = Date.now();
      const id = await test(ep.id);
      await settled(ep.id, id, 'succeeded');

      const res = await log(ep.id);

      expect(res.status).toBe(200);
      expect(res.body).toEqual({
        deliveries: [
          {
            id,
            type: 'webhook.test',
            status: 'succeeded',
            createdAt: expect.any(Number) as unknown,
            nextAttemptAt: null,
            attempts: [
              {
                at: expect.any(Number) as unknown,
                statusCode: 204,
                durationMs: expect.any(Number) as unknown,
                error: null,
              },
            ],
          },
        ],
        nextCursor: null,
      });
      const [delivery] = (res.body as { deliveries: Delivery[] }).deliveries;
      expect(delivery.createdAt).toBeGreaterThanOrEqual(before);
      expect(delivery.attempts[0].at).toBeGreaterThanOrEqual(delivery.createdAt);
      expect(delivery.attempts[0].durationMs).toBeGreaterThanOrEqual(0);
    });

    it('a delivery that failed: every attempt with its status code and error', async () => {
      const r = await receiver();
      const ep = await create({ url: r.url });
      const id = await failedDelivery(r, ep.id);

      const [delivery] = ((await log(ep.id, 'status=failed')).body as { deliveries: Delivery[] })
        .deliveries;

      expect(delivery).toMatchObject({ id, status: 'failed', nextAttemptAt: null });
      expect(delivery.attempts).toEqual(
        Array.from({ length: 4 }, () => ({
          at: expect.any(Number) as unknown,
          statusCode: 500,
          durationMs: expect.any(Number) as unknown,
          error: 'status 500',
        })),
      );
    });

    it('an attempt with no answer: statusCode null and the error', async () => {
      const r = await receiver();
      const ep = await create({ url: r.url });
      await r.stop();
      const id = await test(ep.id);
      const delivery = await settled(ep.id, id, 'failed');
      expect(delivery.attempts).toHaveLength(4);
      for (const attempt of delivery.attempts) {
        expect(attempt).toMatchObject({ statusCode: null, error: 'ECONNREFUSED' });
      }
    });

    it('status filters; newest first; limit and cursor walk every page once', async () => {
      const r = await receiver();
      const ep = await create({ url: r.url });
      const failed = await failedDelivery(r, ep.id);
      r.answer = () => ({ status: 204 });
      const ok: string[] = [];
      for (let i = 0; i < 3; i++) {
        ok.push(await test(ep.id));
        await settled(ep.id, ok[i], 'succeeded');
        await new Promise((resolve) => setTimeout(resolve, 2)); // distinct times
      }
      await http().patch(`/api/webhooks/${ep.id}`).set(key).send({ enabled: false });
      const pending = await test(ep.id);

      const ids = async (query: string) =>
        ((await log(ep.id, query)).body as { deliveries: Delivery[] }).deliveries.map((d) => d.id);
      expect(await ids('')).toEqual([pending, ...[...ok].reverse(), failed]);
      expect(await ids('status=failed')).toEqual([failed]);
      expect(await ids('status=succeeded')).toEqual([...ok].reverse());
      expect(await ids('status=pending')).toEqual([pending]);
      const [waiting] = ((await log(ep.id, 'status=pending')).body as { deliveries: Delivery[] })
        .deliveries;
      expect(waiting.attempts).toEqual([]);

      const seen: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const res = await log(ep.id, `limit=2${cursor ? `&cursor=${cursor}` : ''}`);
        expect(res.status).toBe(200);
        const page = res.body as { deliveries: Delivery[]; nextCursor: string | null };
        expect(page.deliveries.length).toBeLessThanOrEqual(2);
        seen.push(...page.deliveries.map((d) => d.id));
        cursor = page.nextCursor;
        pages++;
      } while (cursor && pages < 5);
      expect(seen).toEqual([pending, ...[...ok].reverse(), failed]);
      expect(pages).toBeLessThanOrEqual(3);

      const firstSucceeded = (await log(ep.id, 'status=succeeded&limit=1')).body as {
        deliveries: Delivery[];
        nextCursor: string;
      };
      expect(firstSucceeded.deliveries.map((d) => d.id)).toEqual([ok[2]]);
      expect(await ids(`status=succeeded&limit=100&cursor=${firstSucceeded.nextCursor}`)).toEqual([
        ok[1],
        ok[0],
      ]);
    });

    describe('bad query: 400 validation_failed naming the parameter', () => {
      it.each([
        ['status=done', [{ field: 'status', message: STATUS_RULE }]],
        ['status=', [{ field: 'status', message: STATUS_RULE }]],
        ['status=failed&status=pending', [{ field: 'status', message: STATUS_RULE }]],
        ['limit=0', [{ field: 'limit', message: LIMIT_RULE }]],
        ['limit=101', [{ field: 'limit', message: LIMIT_RULE }]],
        ['limit=-1', [{ field: 'limit', message: LIMIT_RULE }]],
        ['limit=1.5', [{ field: 'limit', message: LIMIT_RULE }]],
        ['limit=ten', [{ field: 'limit', message: LIMIT_RULE }]],
        ['limit=', [{ field: 'limit', message: LIMIT_RULE }]],
        ['limit=1&limit=2', [{ field: 'limit', message: LIMIT_RULE }]],
        ['cursor=', [{ field: 'cursor', message: CURSOR_RULE }]],
        ['cursor=abc', [{ field: 'cursor', message: CURSOR_RULE }]],
        ['cursor=%21%21', [{ field: 'cursor', message: CURSOR_RULE }]],
        [
          `cursor=${Buffer.from('[1,"evt_x"]').toString('base64url')}`,
          [{ field: 'cursor', message: CURSOR_RULE }],
        ],
        [`cursor=${'a'.repeat(600)}`, [{ field: 'cursor', message: CURSOR_RULE }]],
        ['cursor=a&cursor=b', [{ field: 'cursor', message: CURSOR_RULE }]],
        ['page=2', [{ field: 'page', message: 'page is not a parameter of this route' }]],
        [
          'status=x&limit=0',
          [
            { field: 'status', message: STATUS_RULE },
            { field: 'limit', message: LIMIT_RULE },
          ],
        ],
      ])('%s', async (query, errors) => {
        const ep = await create();
        expectInvalid(await log(ep.id, query), errors);
      });
    });

    it('404 webhook_not_found for an unknown id', async () => {
      expectProblem(await log(UNKNOWN_WEBHOOK_ID), 404, 'webhook_not_found');
    });

    it.each(MALFORMED_WEBHOOK_IDS)('404 webhook_not_found for the malformed id %j', async (id) => {
      expectProblem(await log(id), 404, 'webhook_not_found');
    });

    describe('access', () => {
      itTakesAnApiKeyOnly(customerToken, async (headers) => {
        const ep = await create();
        return http().get(`/api/webhooks/${ep.id}/deliveries`).set(headers);
      });
    });
  });

  itRefusesOpenMode((http) => http().get(`/api/webhooks/${UNKNOWN_WEBHOOK_ID}/deliveries`));
});
