import {
  Endpoint,
  itRefusesOpenMode,
  itTakesAnApiKeyOnly,
  newEndpointView,
  useWebhookApp,
} from '../utils/webhook-api';

describe('GET /api/webhooks', () => {
  describe('API_KEYS set', () => {
    const { http, key, create, customerToken } = useWebhookApp();
    const list = () => http().get('/api/webhooks').set(key);

    it('200 with no endpoints: an empty list', async () => {
      const res = await list();
      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      expect(res.body).toEqual({ webhooks: [] });
    });

    it('200 with every endpoint, oldest first, each exactly as GET shows it, no secret', async () => {
      const a = await create({ url: 'https://a.example.com/hook' });
      const b = await create({
        url: 'https://b.example.com/hook',
        events: ['message.*'],
        description: 'bot',
      });
      const c = await create({ url: 'https://c.example.com/hook' });
      expect(
        (await http().patch(`/api/webhooks/${c.id}`).set(key).send({ enabled: false })).status,
      ).toBe(200);

      const res = await list();

      expect(res.status).toBe(200);
      const { webhooks } = res.body as { webhooks: Endpoint[] };
      expect(webhooks).toEqual([
        newEndpointView({ id: a.id, url: 'https://a.example.com/hook' }),
        newEndpointView({
          id: b.id,
          url: 'https://b.example.com/hook',
          events: ['message.*'],
          description: 'bot',
        }),
        newEndpointView({
          id: c.id,
          url: 'https://c.example.com/hook',
          status: 'disabled',
          disabledReason: 'manual',
        }),
      ]);
      for (const endpoint of webhooks) {
        expect(endpoint).not.toHaveProperty('secret');
        expect(JSON.stringify(endpoint)).not.toMatch(/whsec_/);
        expect((await http().get(`/api/webhooks/${endpoint.id}`).set(key)).body).toEqual(endpoint);
      }
    });

    it('a rotated endpoint lists when its previous secret stops, still no secret', async () => {
      const ep = await create();
      const rotated = await http().post(`/api/webhooks/${ep.id}/rotate-secret`).set(key);
      expect(rotated.status).toBe(200);
      const res = await list();
      expect(JSON.stringify(res.body)).not.toMatch(/whsec_/);
      expect((res.body as { webhooks: Endpoint[] }).webhooks[0].previousSecretsExpireAt).toEqual([
        (rotated.body as { previousSecretExpiresAt: number }).previousSecretExpiresAt,
      ]);
    });

    it('a deleted endpoint is no longer listed', async () => {
      const a = await create();
      const b = await create();
      expect((await http().delete(`/api/webhooks/${a.id}`).set(key)).status).toBe(200);
      expect((await list()).body).toEqual({ webhooks: [expect.objectContaining({ id: b.id })] });
    });

    it('a query string is ignored, as on every route that takes none', async () => {
      const ep = await create();
      const res = await http().get('/api/webhooks?status=disabled').set(key);
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ webhooks: [newEndpointView({ id: ep.id })] });
    });

    describe('access', () => {
      itTakesAnApiKeyOnly(customerToken, async (headers) =>
        http().get('/api/webhooks').set(headers),
      );
    });
  });

  itRefusesOpenMode((http) => http().get('/api/webhooks'));
});
