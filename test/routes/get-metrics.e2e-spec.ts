import request from 'supertest';
import { ConversationRepository } from '../../src/conversations/conversation.repository';
import { useTestApp } from '../utils/create-app';
import { sample, StoreWithStats } from '../utils/observability';

// Counts summed over both workers, whichever serves the scrape: operability.e2e-spec.ts.
describe('GET /metrics', () => {
  describe('single process', () => {
    const app = useTestApp();

    it('counts requests by route pattern and status, and what the store holds', async () => {
      const server = app().getHttpServer();
      const { body } = await request(server).post('/api/conversations');
      const id = (body as { id: string }).id;
      for (let i = 0; i < 3; i++) {
        await request(server)
          .post(`/api/conversations/${id}/messages`)
          .send({ sender: 'agent', content: `m${i}` })
          .expect(201);
      }
      await request(server).get('/no/such/route').expect(404);

      const res = await request(server).get('/metrics');

      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toMatch(/^text\/plain;.*version=0\.0\.4/);
      const route = '/api/conversations/:conversationId/messages';
      expect(sample(res.text, 'http_requests_total', { route, status: '201' })).toBe(3);
      expect(sample(res.text, 'http_request_duration_seconds_count', { route })).toBe(3);
      expect(sample(res.text, 'http_requests_total', { route: 'unmatched', status: '404' })).toBe(
        1,
      );
      expect(sample(res.text, 'chat_conversations_stored')).toBe(1);
      expect(sample(res.text, 'chat_messages_stored')).toBe(3);
      expect(res.text).toContain('nodejs_eventloop_lag_seconds');
      expect(res.text).toContain('process_resident_memory_bytes');
    });
  });

  describe.each(['hang', 'fail'] as const)('when the store calls %s', (how) => {
    const app = useTestApp({
      env: { HEALTH_TIMEOUT_MS: '100' },
      override: (builder) =>
        builder.overrideProvider(ConversationRepository).useValue(new StoreWithStats(how)),
    });

    it('still serves /metrics, without the store gauges it cannot read', async () => {
      const res = await request(app().getHttpServer()).get('/metrics');

      expect(res.status).toBe(200);
      expect(res.text).toContain('# TYPE http_requests_total counter');
    });
  });

  describe('METRICS_ENABLED=false', () => {
    const app = useTestApp({ env: { METRICS_ENABLED: 'false' } });

    it('GET /metrics is 404 problem+json', async () => {
      const res = await request(app().getHttpServer()).get('/metrics');

      expect(res.status).toBe(404);
      expect(res.body).toMatchObject({ code: 'not_found' });
    });
  });
});
