import request from 'supertest';
import { useApp } from '../utils/api';
import { useTestApp } from '../utils/create-app';
import { API_KEYS } from '../utils/credentials';

describe('GET /docs-json', () => {
  describe('default limits', () => {
    const { http } = useApp();

    it('serves an OpenAPI document with every conversation route and problem+json errors', async () => {
      const res = await http().get('/docs-json');

      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      const doc = res.body as {
        openapi: string;
        paths: Record<
          string,
          Record<
            string,
            {
              responses: Record<string, { content?: Record<string, unknown> }>;
              parameters?: { name: string; in: string }[];
              security?: unknown[];
            }
          >
        >;
        components: { schemas: Record<string, unknown> };
      };
      expect(doc.openapi).toMatch(/^3\./);
      expect(doc.components.schemas.ProblemDto).toBeDefined();

      // Every conversation route may also answer 401 (access control) and 429 (rate limit).
      const expected: [string, string, string[], string[]][] = [
        ['/api/conversations', 'post', ['201'], ['400', '403', '422', '503', '507']],
        ['/api/conversations/{conversationId}', 'get', ['200'], ['404']],
        [
          '/api/conversations/{conversationId}/messages',
          'post',
          ['201'],
          ['400', '403', '404', '409', '413', '415', '422', '503', '507'],
        ],
        ['/api/conversations/{conversationId}/messages', 'get', ['200'], ['400', '404']],
        ['/api/conversations/{conversationId}/events', 'get', ['200'], ['400', '404', '503']],
        [
          '/api/conversations/{conversationId}/typing',
          'post',
          ['204'],
          ['400', '403', '404', '413', '415', '503'],
        ],
        [
          '/api/conversations/{conversationId}/read',
          'post',
          ['200'],
          ['400', '403', '404', '413', '415', '503', '507'],
        ],
        [
          '/api/conversations/{conversationId}/messages/{messageId}',
          'delete',
          ['200'],
          ['403', '404', '503'],
        ],
      ];
      for (const [path, method, success, listed] of expected) {
        const errors = [...listed, '401', '429'];
        const operation = doc.paths[path]?.[method];
        expect(operation).toBeDefined();
        expect(operation.security).toEqual([{ bearer: [] }]);
        expect(Object.keys(operation.responses).sort()).toEqual([...success, ...errors].sort());
        for (const status of errors) {
          expect(operation.responses[status].content).toEqual({
            'application/problem+json': { schema: { $ref: '#/components/schemas/ProblemDto' } },
          });
        }
      }
      for (const path of ['/api/conversations', '/api/conversations/{conversationId}/messages']) {
        const { parameters } = doc.paths[path].post;
        expect(parameters).toContainEqual(
          expect.objectContaining({ name: 'Idempotency-Key', in: 'header' }),
        );
      }
    });
  });

  describe('single process', () => {
    const app = useTestApp();

    it('documents the health and metrics routes in Swagger', async () => {
      const res = await request(app().getHttpServer()).get('/docs-json');

      expect(Object.keys(res.body.paths as object)).toEqual(
        expect.arrayContaining(['/health/live', '/health/ready', '/metrics']),
      );
    });
  });

  describe('access control (API_KEYS set)', () => {
    const app = useTestApp({ env: { API_KEYS } });
    const http = () => request(app().getHttpServer());

    it('documents the bearer scheme in the OpenAPI document', async () => {
      const doc = (await http().get('/docs-json')).body as {
        components: { securitySchemes: Record<string, { type: string; scheme: string }> };
      };
      expect(doc.components.securitySchemes.bearer).toMatchObject({
        type: 'http',
        scheme: 'bearer',
      });
    });
  });
});
