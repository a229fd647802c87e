import { expectProblem } from '../utils/problem';
import {
  Endpoint,
  eventually,
  itRefusesOpenMode,
  itTakesAnApiKeyOnly,
  MALFORMED_WEBHOOK_IDS,
  UNKNOWN_WEBHOOK_ID,
  useWebhookApp,
} from '../utils/webhook-api';

describe('DELETE /api/webhooks/{webhookId}', () => {
  describe('API_KEYS set, WEBHOOK_ALLOW_PRIVATE_NETWORKS=true', () => {
    const { http, key, create, receiver, customerToken } = useWebhookApp();
    const remove = (id: string) => http().delete(`/api/webhooks/${id}`).set(key);
    const ids = async () =>
      ((await http().get('/api/webhooks').set(key)).body as { webhooks: Endpoint[] }).webhooks.map(
        (e) => e.id,
      );

    it('200 { success, webhookId }; the endpoint is gone, the others stay', async () => {
      const ep = await create();
      const other = await create();

      const res = await remove(ep.id);

      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      expect(res.body).toEqual({ success: true, webhookId: ep.id });
      expectProblem(await http().get(`/api/webhooks/${ep.id}`).set(key), 404, 'webhook_not_found');
      expect(await ids()).toEqual([other.id]);
    });

    it('drops its log, and nothing more is sent to it', async () => {
      const r = await receiver();
      const ep = await create({ url: r.url, events: ['conversation.created'] });
      const sent = await http().post(`/api/webhooks/${ep.id}/test`).set(key);
      const { deliveryId } = sent.body as { deliveryId: string };
      await eventually(() => r.ids().includes(deliveryId));

      expect((await remove(ep.id)).status).toBe(200);

      expectProblem(
        await http().get(`/api/webhooks/${ep.id}/deliveries`).set(key),
        404,
        'webhook_not_found',
      );
      expectProblem(
        await http().post(`/api/webhooks/${ep.id}/deliveries/${deliveryId}/retry`).set(key),
        404,
        'webhook_not_found',
      );
      await http().post('/api/conversations').set(key);
      await new Promise((resolve) => setTimeout(resolve, 100)); // nothing comes
      expect(r.received).toHaveLength(1);
    });

    it('a second DELETE: 404 webhook_not_found', async () => {
      const ep = await create();
      expect((await remove(ep.id)).status).toBe(200);
      expectProblem(await remove(ep.id), 404, 'webhook_not_found');
    });

    it('404 webhook_not_found for an unknown id, and nothing removed', async () => {
      const ep = await create();
      expectProblem(await remove(UNKNOWN_WEBHOOK_ID), 404, 'webhook_not_found');
      expect(await ids()).toEqual([ep.id]);
    });

    it.each(MALFORMED_WEBHOOK_IDS)('404 webhook_not_found for the malformed id %j', async (id) => {
      expectProblem(await remove(id), 404, 'webhook_not_found');
    });

    describe('access', () => {
      let made: string[] = [];
      itTakesAnApiKeyOnly(
        customerToken,
        async (headers) => {
          const ep = await create();
          made.push(ep.id);
          return http().delete(`/api/webhooks/${ep.id}`).set(headers);
        },
        async () => {
          expect(await ids()).toEqual(made);
          made = [];
        },
      );
    });
  });

  itRefusesOpenMode((http) => http().delete(`/api/webhooks/${UNKNOWN_WEBHOOK_ID}`));
});
