import { UNKNOWN_ID, useApp } from './utils/api';
import { expectProblem } from './utils/problem';

// Not one route's behaviour: what the server answers where no route is.
describe('unknown routes', () => {
  const { http } = useApp();

  it.each([
    ['get', '/api/nope'],
    ['get', '/nope'],
    ['post', '/'],
    // GET /api/conversations and PATCH /api/conversations/{id} are the inbox's routes.
    ['put', '/api/conversations'],
    ['put', `/api/conversations/${UNKNOWN_ID}`],
    ['get', `/api/conversations/${UNKNOWN_ID}/claim`],
    ['post', '/api/conversations/counts'],
    ['put', `/api/conversations/${UNKNOWN_ID}/messages`],
    ['delete', `/api/conversations/${UNKNOWN_ID}`],
  ] as const)('%s %s -> 404 not_found', async (method, path) => {
    const res = await http()[method](path);

    expectProblem(res, 404, 'not_found');
  });
});
