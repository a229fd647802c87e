import { expectProblem } from '../utils/problem';
import {
  eventually,
  expectInvalid,
  itRefusesOpenMode,
  itRefusesUnreadableBodies,
  itTakesAnApiKeyOnly,
  MALFORMED_WEBHOOK_IDS,
  UNKNOWN_WEBHOOK_ID,
  useWebhookApp,
} from '../utils/webhook-api';

describe('POST /api/webhooks/{webhookId}/deliveries/{deliveryId}/retry', () => {
  describe('API_KEYS set, WEBHOOK_ALLOW_PRIVATE_NETWORKS=true, retries in ms', () => {
    const {
      http,
      key,
      create,
      read,
      deliveries,
      receiver,
      settled,
      failedDelivery,
      customerToken,
    } = useWebhookApp();
    const retry = (id: string, deliveryId: string) =>
      http().post(`/api/webhooks/${id}/deliveries/${deliveryId}/retry`).set(key);

    it('202 { deliveryId }: a failed delivery is sent again, same id and body, and succeeds', async () => {
      const r = await receiver();
      const ep = await create({ url: r.url });
      const deliveryId = await failedDelivery(r, ep.id);
      expect(r.received).toHaveLength(4);
      r.answer = () => ({ status: 204 });

      const res = await retry(ep.id, deliveryId);

      expect(res.status).toBe(202);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      expect(res.body).toEqual({ deliveryId });
      await eventually(() => r.received.length === 5, 5_000, 'the retry');
      const again = r.received[4];
      expect(again.id).toBe(deliveryId);
      expect(again.body).toBe(r.received[0].body);
      expect(r.verifiedWith(again, ep.secret)).toBe(true);
      const delivery = await settled(ep.id, deliveryId, 'succeeded');
      expect(delivery.attempts.map((a) => a.statusCode)).toEqual([500, 500, 500, 500, 204]);
    });

    it('a delivery that succeeded can be sent again too', async () => {
      const r = await receiver();
      const ep = await create({ url: r.url });
      const sent = await http().post(`/api/webhooks/${ep.id}/test`).set(key);
      const { deliveryId } = sent.body as { deliveryId: string };
      await settled(ep.id, deliveryId, 'succeeded');

      expect((await retry(ep.id, deliveryId).send({})).status).toBe(202);

      await eventually(() => r.received.length === 2);
      expect(r.ids()).toEqual([deliveryId, deliveryId]);
    });

    it('404 webhook_delivery_not_found for an id not in this endpoint’s log', async () => {
      const r = await receiver();
      const ep = await create({ url: r.url });
      const other = await create({ url: r.url });
      const deliveryId = await failedDelivery(r, other.id);

      expectProblem(await retry(ep.id, deliveryId), 404, 'webhook_delivery_not_found');
      expectProblem(
        await retry(ep.id, `evt_test_${'0'.repeat(32)}`),
        404,
        'webhook_delivery_not_found',
      );
      expect(await deliveries(ep.id)).toEqual([]);
    });

    it.each(['nope', 'evt_', 'evt_a-b', `evt_${'a'.repeat(201)}`, '%20'])(
      '404 webhook_delivery_not_found for the malformed delivery id %j',
      async (deliveryId) => {
        const ep = await create();
        expectProblem(await retry(ep.id, deliveryId), 404, 'webhook_delivery_not_found');
      },
    );

    describe('a body with fields: 400 validation_failed, and nothing sent', () => {
      it.each([
        [{ force: true }, [{ field: 'force', message: 'property force should not exist' }]],
        ['[1]', [{ field: '(body)', message: 'the body must be empty or a JSON object' }]],
      ])('%j', async (body, errors) => {
        const r = await receiver();
        const ep = await create({ url: r.url });
        const deliveryId = await failedDelivery(r, ep.id);
        const req = retry(ep.id, deliveryId);
        const res = await (typeof body === 'string'
          ? req.set('Content-Type', 'application/json').send(body)
          : req.send(body));
        expectInvalid(res, errors);
        await new Promise((resolve) => setTimeout(resolve, 50));
        expect(r.received).toHaveLength(4);
      });
    });

    describe('unreadable bodies', () => {
      let id = '';
      let deliveryId = '';
      let count = 0;
      // Made for each test: the endpoints are deleted after each one. The filter keeps other
      // events off the receiver.
      const r = { current: null as null | Awaited<ReturnType<typeof receiver>> };
      beforeEach(async () => {
        r.current = await receiver();
        id = (await create({ url: r.current.url, events: ['message.deleted'] })).id;
        deliveryId = await failedDelivery(r.current, id);
        count = r.current.received.length;
      });
      itRefusesUnreadableBodies(
        () => retry(id, deliveryId),
        async () => {
          expect(r.current?.received).toHaveLength(count);
          expect((await settled(id, deliveryId, 'failed')).attempts).toHaveLength(4);
        },
      );
    });

    it('404 webhook_not_found for an unknown endpoint', async () => {
      expectProblem(
        await retry(UNKNOWN_WEBHOOK_ID, `evt_test_${'0'.repeat(32)}`),
        404,
        'webhook_not_found',
      );
    });

    it.each(MALFORMED_WEBHOOK_IDS)('404 webhook_not_found for the malformed id %j', async (id) => {
      expectProblem(await retry(id, `evt_test_${'0'.repeat(32)}`), 404, 'webhook_not_found');
    });

    describe('access', () => {
      let id = '';
      let deliveryId = '';
      const r = { current: null as null | Awaited<ReturnType<typeof receiver>> };
      beforeEach(async () => {
        r.current = await receiver();
        id = (await create({ url: r.current.url, events: ['message.deleted'] })).id;
        deliveryId = await failedDelivery(r.current, id);
      });
      itTakesAnApiKeyOnly(
        customerToken,
        async (headers) =>
          http().post(`/api/webhooks/${id}/deliveries/${deliveryId}/retry`).set(headers),
        async () => {
          expect(r.current?.received).toHaveLength(4);
          expect((await read(id)).status).toBe('enabled');
        },
      );
    });
  });

  itRefusesOpenMode((http) =>
    http().post(`/api/webhooks/${UNKNOWN_WEBHOOK_ID}/deliveries/evt_test_0/retry`),
  );
});
