import { useApp } from '../utils/api';

// In a browser ("Try it out", Authorize): console.e2e-spec.ts and plain-http.e2e-spec.ts.
describe('GET /docs', () => {
  describe('default limits', () => {
    const { http } = useApp();

    it('serves the UI at /docs', async () => {
      const res = await http().get('/docs');

      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toMatch(/^text\/html/);
      expect(res.text).toContain('swagger');
    });
  });
});
