import express from 'express';
import { request as httpRequest, Server } from 'node:http';
import { AddressInfo } from 'node:net';
import { sendJson, sendJsonPieces } from './json-response';

interface Answer {
  status: number;
  headers: Record<string, unknown>;
  body: string;
}

function fetchRaw(port: number, method: string, path: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ port, host: '127.0.0.1', method, path }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        // The date is the only header that may differ between two answers.
        const headers: Record<string, unknown> = { ...res.headers };
        delete headers.date;
        resolve({
          status: res.statusCode!,
          headers,
          body: Buffer.concat(chunks).toString('utf8'),
        });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

/** Bodies on both sides of the one-write size, with characters of every UTF-8 length. */
const VALUES: Record<string, unknown> = {
  small: { id: 'a', content: 'é€😀 "quoted" \\ \n', seq: 1, ok: true },
  large: {
    messages: Array.from({ length: 400 }, (_, i) => ({ i, content: `€😀 ${'x'.repeat(40)}` })),
    hasMore: false,
  },
};

/** JSON text cut into pieces as the stores hand it over: anywhere, even inside a string. */
function piecesOf(json: string): string[] {
  const pieces: string[] = [];
  for (let i = 0; i < json.length; i += 997) {
    pieces.push(json.slice(i, i + 997));
  }
  return pieces;
}

describe("sendJson and sendJsonPieces, against Express's res.json", () => {
  let server: Server;
  let port: number;

  beforeAll(async () => {
    const app = express();
    // As the server's app (app.setup.ts): no ETag, no X-Powered-By.
    app.set('etag', false);
    app.disable('x-powered-by');
    app.all('/:how/:value/:status', (req, res) => {
      const value = VALUES[req.params.value as string];
      const status = Number(req.params.status);
      res.setHeader('X-Before', 'kept');
      if (req.params.how === 'express') {
        res.status(status).json(value);
      } else if (req.params.how === 'text') {
        sendJson(res, status, JSON.stringify(value));
      } else {
        sendJsonPieces(res, status, piecesOf(JSON.stringify(value)));
      }
    });
    server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    port = (server.address() as AddressInfo).port;
  });

  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  it.each([
    ['GET', 'small', 200],
    ['GET', 'large', 200],
    ['POST', 'small', 201],
    ['POST', 'large', 201],
    ['DELETE', 'small', 200],
  ])('answers %s of a %s body with status %d as res.json does', async (method, value, status) => {
    const expected = await fetchRaw(port, method, `/express/${value}/${status}`);
    expect(expected.status).toBe(status);
    expect(expected.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(expected.headers['x-before']).toBe('kept');

    expect(await fetchRaw(port, method, `/text/${value}/${status}`)).toEqual(expected);
    expect(await fetchRaw(port, method, `/pieces/${value}/${status}`)).toEqual(expected);
  });
});
