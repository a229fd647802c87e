import { UNKNOWN_ID, useApp } from './utils/api';
import { expectProblem } from './utils/problem';

// Not one route's behaviour: what the server answers where no route is.
describe('unknown routes', () => {
  const { http } = useApp();

  it.each([
    ['get', '/api/nope'],
    ['get', '/nope'],
    ['post', '/'],
    ['get', '/api/conversations'],
    ['put', `/api/conversations/${UNKNOWN_ID}`],
    ['patch', `/api/conversations/${UNKNOWN_ID}`],
    ['put', `/api/conversations/${UNKNOWN_ID}/messages`],
    ['delete', `/api/conversations/${UNKNOWN_ID}`],
  ] as const)('%s %s -> 404 not_found', async (method, path) => {
    const res = await http()[method](path);

    expectProblem(res, 404, 'not_found');
  });
});
