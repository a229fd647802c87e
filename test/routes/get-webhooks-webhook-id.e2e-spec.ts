import { expectProblem } from '../utils/problem';
import {
  eventually,
  itRefusesOpenMode,
  itTakesAnApiKeyOnly,
  MALFORMED_WEBHOOK_IDS,
  newEndpointView,
  UNKNOWN_WEBHOOK_ID,
  useWebhookApp,
} from '../utils/webhook-api';

describe('GET /api/webhooks/{webhookId}', () => {
  describe('API_KEYS set, WEBHOOK_ALLOW_PRIVATE_NETWORKS=true', () => {
    const { http, key, create, receiver, customerToken } = useWebhookApp();
    const get = (id: string) => http().get(`/api/webhooks/${id}`).set(key);

    it('200 with the endpoint exactly as created, without its secret', async () => {
      const ep = await create({
        url: 'https://example.com/hook',
        events: ['conversation.created'],
        description: 'archive',
      });

      const res = await get(ep.id);

      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      expect(res.body).toEqual(
        newEndpointView({
          id: ep.id,
          events: ['conversation.created'],
          description: 'archive',
          createdAt: ep.createdAt,
          updatedAt: ep.createdAt,
        }),
      );
      expect(JSON.stringify(res.body)).not.toContain(ep.secret);
    });

    it('shows lastSuccessAt after a 2xx, and failingSince while attempts fail', async () => {
      const r = await receiver();
      const ep = await create({ url: r.url });
      const before = Date.now();
      expect((await http().post(`/api/webhooks/${ep.id}/test`).set(key)).status).toBe(202);
      const ok = (await eventually(async () => {
        const view = (await get(ep.id)).body as { lastSuccessAt: number | null };
        return view.lastSuccessAt !== null ? view : null;
      })) as { lastSuccessAt: number };
      expect(ok).toMatchObject({ status: 'enabled', failingSince: null });
      expect(ok.lastSuccessAt).toBeGreaterThanOrEqual(before);

      r.answer = () => ({ status: 500 });
      expect((await http().post(`/api/webhooks/${ep.id}/test`).set(key)).status).toBe(202);
      const failing = await eventually(async () => {
        const view = (await get(ep.id)).body as { failingSince: number | null };
        return view.failingSince !== null ? view : null;
      });
      expect(failing).toMatchObject({ status: 'enabled', lastSuccessAt: ok.lastSuccessAt });
    });

    it('404 webhook_not_found for an unknown id', async () => {
      expectProblem(await get(UNKNOWN_WEBHOOK_ID), 404, 'webhook_not_found');
    });

    it('404 webhook_not_found for a deleted endpoint', async () => {
      const ep = await create();
      expect((await http().delete(`/api/webhooks/${ep.id}`).set(key)).status).toBe(200);
      expectProblem(await get(ep.id), 404, 'webhook_not_found');
    });

    it.each(MALFORMED_WEBHOOK_IDS)('404 webhook_not_found for the malformed id %j', async (id) => {
      expectProblem(await get(id), 404, 'webhook_not_found');
    });

    describe('access', () => {
      itTakesAnApiKeyOnly(customerToken, async (headers) => {
        const ep = await create();
        return http().get(`/api/webhooks/${ep.id}`).set(headers);
      });
    });
  });

  itRefusesOpenMode((http) => http().get(`/api/webhooks/${UNKNOWN_WEBHOOK_ID}`));
});
