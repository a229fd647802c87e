import express, { Express } from 'express';
import { AddressInfo } from 'node:net';
import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import { expressMessageClasses } from './express-message-classes';

interface Seen {
  requestPrototype: boolean;
  responsePrototype: boolean;
  requestIsMessage: boolean;
  responseIsResponse: boolean;
  path: string;
  query: unknown;
}

/**
 * An Express app on a server made with expressMessageClasses, listening on loopback; `made`
 * gets, for each request before Express sees it, whether it and its response were made with
 * Express's prototypes.
 */
async function serve(app: Express, made: boolean[]): Promise<{ server: Server; url: string }> {
  const server = createServer({ ...expressMessageClasses(app) }, app);
  server.prependListener('request', (req: IncomingMessage, res: ServerResponse) => {
    made.push(
      Object.getPrototypeOf(req) === app.request && Object.getPrototypeOf(res) === app.response,
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

describe('expressMessageClasses', () => {
  let server: Server;
  let url: string;
  const seen: Seen[] = [];
  const made: boolean[] = [];
  const added = Symbol('added');

  beforeAll(async () => {
    const app = express();
    app.set('etag', false);
    app.use((req, res, next) => {
      seen.push({
        requestPrototype: Object.getPrototypeOf(req) === app.request,
        responsePrototype: Object.getPrototypeOf(res) === app.response,
        requestIsMessage: req instanceof IncomingMessage,
        responseIsResponse: res instanceof ServerResponse,
        path: req.path,
        query: req.query,
      });
      (res as unknown as Record<symbol, number>)[added] = seen.length;
      next();
    });
    app.get('/things/:id', (req, res) => {
      res.status(201).json({
        id: req.params.id,
        added: (res as unknown as Record<symbol, number>)[added],
      });
    });
    ({ server, url } = await serve(app, made));
  });

  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  it("makes requests and responses with Express's prototypes, which Express leaves in place", async () => {
    const answer = await fetch(`${url}/things/7?a=1`);
    expect(answer.status).toBe(201);
    expect(answer.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(await answer.json()).toEqual({ id: '7', added: 1 });
    expect(seen[0]).toEqual({
      requestPrototype: true,
      responsePrototype: true,
      requestIsMessage: true,
      responseIsResponse: true,
      path: '/things/7',
      query: { a: '1' },
    });
    expect(made).toEqual([true]);
  });

  it('serves one request after another the same way, and one that matches no route', async () => {
    const answers = [];
    for (let i = 0; i < 5; i++) {
      answers.push(await fetch(`${url}/things/${i}`));
    }
    expect(await Promise.all(answers.map((a) => a.json()))).toEqual(
      [0, 1, 2, 3, 4].map((i) => ({ id: String(i), added: seen.length - 4 + i })),
    );
    const missing = await fetch(`${url}/nothing`);
    expect(missing.status).toBe(404);
    expect(seen.every((s) => s.requestPrototype && s.responsePrototype)).toBe(true);
    expect(made).toEqual([true, true, true, true, true, true, true]);
  });

  it("keeps Express's own request and response methods and app link", () => {
    const app = express();
    const before = { request: app.request, response: app.response };
    expressMessageClasses(app);
    expect(Object.getPrototypeOf(app.request)).toBe(before.request);
    expect(Object.getPrototypeOf(app.response)).toBe(before.response);
    expect((app.request as unknown as { app: Express }).app).toBe(app);
    expect(typeof app.response.json).toBe('function');
    expect(typeof app.request.get).toBe('function');
  });
});
