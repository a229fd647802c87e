import request from 'supertest';
import { ConversationRepository } from '../../src/conversations/conversation.repository';
import { useTestApp } from '../utils/create-app';
import { StoreWithStats } from '../utils/observability';

// Ready from both workers in cluster mode: operability.e2e-spec.ts; on Redis and Redis Cluster,
// their suites.
describe('GET /health/ready', () => {
  describe('single process', () => {
    const app = useTestApp();

    it('GET /health/ready answers 200 naming the store', async () => {
      const res = await request(app().getHttpServer()).get('/health/ready');

      expect(res.status).toBe(200);
      expect(res.body).toEqual({
        status: 'ok',
        info: { store: { status: 'up', kind: 'in-memory' } },
        error: {},
        details: { store: { status: 'up', kind: 'in-memory' } },
      });
    });
  });

  describe.each(['hang', 'fail'] as const)('when the store calls %s', (how) => {
    const app = useTestApp({
      env: { HEALTH_TIMEOUT_MS: '100' },
      override: (builder) =>
        builder.overrideProvider(ConversationRepository).useValue(new StoreWithStats(how)),
    });

    it('answers 503 naming the store and why, within the timeout; live stays 200', async () => {
      const started = Date.now();
      const res = await request(app().getHttpServer()).get('/health/ready');

      expect(res.status).toBe(503);
      expect(Date.now() - started).toBeLessThan(1_000);
      const why = how === 'hang' ? 'no answer within 100 ms' : 'store_unavailable';
      expect(res.body).toEqual({
        status: 'error',
        info: {},
        error: { store: { status: 'down', kind: 'in-memory', message: why } },
        details: { store: { status: 'down', kind: 'in-memory', message: why } },
      });
      expect((await request(app().getHttpServer()).get('/health/live')).status).toBe(200);
    });
  });
});
