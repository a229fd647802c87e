import { expectProblem } from '../utils/problem';
import {
  Delivery,
  eventually,
  expectInvalid,
  itRefusesOpenMode,
  itRefusesUnreadableBodies,
  itTakesAnApiKeyOnly,
  MALFORMED_WEBHOOK_IDS,
  UNKNOWN_WEBHOOK_ID,
  useWebhookApp,
} from '../utils/webhook-api';

const TEST_ID = /^evt_test_[0-9a-f]{32}$/;

describe('POST /api/webhooks/{webhookId}/test', () => {
  describe('API_KEYS set, WEBHOOK_ALLOW_PRIVATE_NETWORKS=true', () => {
    const { http, key, create, deliveries, receiver, customerToken } = useWebhookApp();
    const test = (id: string) => http().post(`/api/webhooks/${id}/test`).set(key);

    it('202 with the delivery id; the receiver gets a signed webhook.test event', async () => {
      const r = await receiver();
      const ep = await create({ url: r.url });
      const before = Date.now();

      const res = await test(ep.id);

      expect(res.status).toBe(202);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      expect(res.body).toEqual({ deliveryId: expect.stringMatching(TEST_ID) as unknown });
      const { deliveryId } = res.body as { deliveryId: string };
      await eventually(() => r.received.length === 1, 5_000, 'the test event');
      const [got] = r.received;
      expect(got.id).toBe(deliveryId);
      expect(r.verifiedWith(got, ep.secret)).toBe(true);
      expect(got.event).toEqual({
        id: deliveryId,
        type: 'webhook.test',
        timestamp: expect.any(String) as unknown,
        data: { endpointId: ep.id, message: 'This is a test event.' },
      });
      const at = Date.parse(got.event.timestamp);
      expect(at).toBeGreaterThanOrEqual(before);
      expect(at).toBeLessThanOrEqual(Date.now());
      expect(Number(got.timestamp) * 1000).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000);
    });

    it('each test is a new event; an empty JSON object as the body is taken', async () => {
      const r = await receiver();
      const ep = await create({ url: r.url });
      const a = await test(ep.id);
      const b = await test(ep.id).send({});
      expect(b.status).toBe(202);
      const ids = [a.body, b.body].map((x) => (x as { deliveryId: string }).deliveryId);
      expect(ids[0]).not.toBe(ids[1]);
      await eventually(() => r.received.length === 2);
      expect(r.ids().sort()).toEqual([...ids].sort());
    });

    it('sent whatever the endpoint’s events filter', async () => {
      const r = await receiver();
      const ep = await create({ url: r.url, events: ['message.deleted'] });
      expect((await test(ep.id)).status).toBe(202);
      await eventually(() => r.received.length === 1);
      expect(r.received[0].event.type).toBe('webhook.test');
    });

    it('to a disabled endpoint: 202, logged as pending, sent once it is enabled again', async () => {
      const r = await receiver();
      const ep = await create({ url: r.url });
      await http().patch(`/api/webhooks/${ep.id}`).set(key).send({ enabled: false });

      const res = await test(ep.id);

      expect(res.status).toBe(202);
      const { deliveryId } = res.body as { deliveryId: string };
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(r.received).toHaveLength(0);
      expect(await deliveries(ep.id)).toEqual([
        expect.objectContaining({ id: deliveryId, status: 'pending', attempts: [] }) as Delivery,
      ]);
      await http().patch(`/api/webhooks/${ep.id}`).set(key).send({ enabled: true });
      await eventually(() => r.ids().includes(deliveryId), 5_000, 'the test event');
    });

    describe('a body with fields: 400 validation_failed, and nothing queued', () => {
      it.each([
        [
          { type: 'message.created' },
          [{ field: 'type', message: 'property type should not exist' }],
        ],
        [[], [{ field: '(body)', message: 'the body must be empty or a JSON object' }]],
      ])('%j', async (body, errors) => {
        const ep = await create();
        expectInvalid(await test(ep.id).send(body), errors);
        expect(await deliveries(ep.id)).toEqual([]);
      });
    });

    describe('unreadable bodies', () => {
      let id = '';
      beforeEach(async () => {
        id = (await create()).id;
      });
      itRefusesUnreadableBodies(
        () => test(id),
        async () => expect(await deliveries(id)).toEqual([]),
      );
    });

    it('404 webhook_not_found for an unknown id', async () => {
      expectProblem(await test(UNKNOWN_WEBHOOK_ID), 404, 'webhook_not_found');
    });

    it.each(MALFORMED_WEBHOOK_IDS)('404 webhook_not_found for the malformed id %j', async (id) => {
      expectProblem(await test(id), 404, 'webhook_not_found');
    });

    describe('access', () => {
      let id = '';
      itTakesAnApiKeyOnly(
        customerToken,
        async (headers) => {
          id = (await create()).id;
          return http().post(`/api/webhooks/${id}/test`).set(headers);
        },
        async () => expect(await deliveries(id)).toEqual([]),
      );
    });
  });

  itRefusesOpenMode((http) => http().post(`/api/webhooks/${UNKNOWN_WEBHOOK_ID}/test`));
});
