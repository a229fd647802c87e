import request from 'supertest';
import { useTestApp } from '../utils/create-app';

// Live from both workers in cluster mode: operability.e2e-spec.ts.
describe('GET /health/live', () => {
  describe('single process', () => {
    const app = useTestApp();

    it('GET /health/live answers 200', async () => {
      const res = await request(app().getHttpServer()).get('/health/live');

      expect(res.status).toBe(200);
      expect(res.body).toEqual({ status: 'ok', info: {}, error: {}, details: {} });
    });
  });
});
