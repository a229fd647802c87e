import request from 'supertest';
import { useTestApp } from '../utils/create-app';

const API_KEY = 'console-test-key-0123456789';

// The console's page, and its script and style under /console/. In a browser:
// console.e2e-spec.ts and plain-http.e2e-spec.ts.
describe('GET /', () => {
  describe('console files (CONSOLE_ENABLED default)', () => {
    const app = useTestApp({ env: { API_KEYS: API_KEY } });

    it('serves the page at / and its script and style, without a credential', async () => {
      const http = request(app().getHttpServer());
      const page = await http.get('/');
      expect(page.status).toBe(200);
      expect(page.headers['content-type']).toMatch(/^text\/html/);
      expect(page.text).toContain('<title>Chat server console</title>');
      // helmet's policy: only the page's own files run.
      expect(page.headers['content-security-policy']).toContain("script-src 'self'");
      expect(page.text).not.toMatch(/<script>(?!<\/script>)/);
      expect(page.text).toContain('href="/docs"');

      const script = await http.get('/console/console.js');
      expect(script.status).toBe(200);
      expect(script.headers['content-type']).toMatch(/javascript/);
      expect(script.text).not.toContain('innerHTML');
      expect((await http.get('/console/console.css')).status).toBe(200);
    });
  });

  describe('CONSOLE_ENABLED=false', () => {
    const app = useTestApp({ env: { CONSOLE_ENABLED: 'false' } });

    it('answers 404 for the page and its files', async () => {
      const http = request(app().getHttpServer());
      for (const path of ['/', '/console/console.js']) {
        const res = await http.get(path);
        expect(res.status).toBe(404);
        expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
      }
    });
  });
});
