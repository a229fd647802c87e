import { NestExpressApplication } from '@nestjs/platform-express';
import { AddressInfo, connect, Socket } from 'node:net';
import { gzipSync } from 'node:zlib';
import request from 'supertest';
import { createTestApp } from './utils/create-app';

/**
 * The JSON body reader (JsonBodyParser) at its edges, over raw sockets: a plain body (not
 * compressed, with a Content-Length) is read by its own path, every other kind by express.raw.
 * Both must read the same JSON, and a client that goes away mid-body must cost nothing.
 */
describe('JSON body reader', () => {
  let app: NestExpressApplication;
  let port: number;
  let id: string;

  beforeAll(async () => {
    app = await createTestApp({ env: { BODY_LIMIT: '2kb' } });
    await app.listen(0, '127.0.0.1');
    port = (app.getHttpServer().address() as AddressInfo).port;
  });
  afterAll(async () => {
    await app.close();
  });
  beforeEach(async () => {
    const res = await request(app.getHttpServer()).post('/api/conversations');
    id = (res.body as { id: string }).id;
  });

  const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

  /** Sends the head, then each piece after a pause; resolves to the raw answer. */
  async function rawPost(path: string, headers: string[], pieces: Buffer[]): Promise<string> {
    const socket: Socket = connect(port, '127.0.0.1');
    let answer = '';
    socket.on('data', (chunk: Buffer) => (answer += chunk.toString('latin1')));
    const ended = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    socket.write(
      [`POST ${path} HTTP/1.1`, 'Host: 127.0.0.1', 'Connection: close', ...headers, '', ''].join(
        '\r\n',
      ),
    );
    for (const piece of pieces) {
      await pause(30);
      socket.write(piece);
    }
    await ended;
    return answer;
  }

  const messages = () => `/api/conversations/${id}/messages`;
  /** A JSON post with its Content-Length, in one piece. */
  const postPlain = (body: Buffer) =>
    rawPost(
      messages(),
      ['Content-Type: application/json', `Content-Length: ${body.length}`],
      [body],
    );
  /** A JSON post as one chunk of a chunked body. */
  const postChunked = (body: Buffer) =>
    rawPost(
      messages(),
      ['Content-Type: application/json', 'Transfer-Encoding: chunked'],
      [Buffer.from(`${body.length.toString(16)}\r\n`), body, Buffer.from('\r\n0\r\n\r\n')],
    );

  const statusOf = (answer: string) => Number(answer.slice(9, 12));
  const bodyOf = (answer: string) =>
    JSON.parse(Buffer.from(answer.slice(answer.indexOf('\r\n\r\n') + 4), 'latin1').toString()) as {
      content?: string;
      code?: string;
    };
  const history = async () =>
    (await request(app.getHttpServer()).get(`/api/conversations/${id}`)).body as {
      messages: { content: string }[];
    };

  it('reads a plain body that arrives in pieces, a character split between two', async () => {
    const body = Buffer.from(JSON.stringify({ sender: 'agent', content: 'déjà vu 😀' }));
    const split = body.indexOf(0xf0) + 2; // inside the emoji's four bytes
    const answer = await rawPost(
      `/api/conversations/${id}/messages`,
      ['Content-Type: application/json', `Content-Length: ${body.length}`],
      [body.subarray(0, 5), body.subarray(5, split), body.subarray(split)],
    );

    expect(statusOf(answer)).toBe(201);
    expect(bodyOf(answer).content).toBe('déjà vu 😀');
  });

  it('reads the same JSON whichever path takes it: plain, chunked, gzip', async () => {
    const body = Buffer.from(JSON.stringify({ sender: 'customer', content: 'ça va ?' }));
    const plain = await postPlain(body);
    const chunked = await postChunked(body);
    const zipped = gzipSync(body);
    const gzip = await rawPost(
      `/api/conversations/${id}/messages`,
      [
        'Content-Type: application/json',
        'Content-Encoding: gzip',
        `Content-Length: ${zipped.length}`,
      ],
      [zipped],
    );

    expect([plain, chunked, gzip].map(statusOf)).toEqual([201, 201, 201]);
    expect([plain, chunked, gzip].map((answer) => bodyOf(answer).content)).toEqual([
      'ça va ?',
      'ça va ?',
      'ça va ?',
    ]);
  });

  it('skips a UTF-8 byte order mark on both paths', async () => {
    const body = Buffer.concat([
      Buffer.from([0xef, 0xbb, 0xbf]),
      Buffer.from('{"sender":"agent","content":"bom"}'),
    ]);
    const plain = await postPlain(body);
    const chunked = await postChunked(body);

    expect([plain, chunked].map(statusOf)).toEqual([201, 201]);
    expect((await history()).messages.map((message) => message.content)).toEqual(['bom', 'bom']);
  });

  it('413 for a declared length over BODY_LIMIT, and for a chunked body past it; nothing stored', async () => {
    const big = Buffer.from(JSON.stringify({ sender: 'agent', content: 'x'.repeat(3_000) }));
    const declared = await postPlain(big);
    const chunked = await postChunked(big);

    expect([declared, chunked].map(statusOf)).toEqual([413, 413]);
    expect(bodyOf(declared).code).toBe('payload_too_large');
    expect((await history()).messages).toEqual([]);
  });

  it('a client that goes away mid-body stores nothing, and the server goes on', async () => {
    const body = Buffer.from(JSON.stringify({ sender: 'agent', content: 'never whole' }));
    for (let i = 0; i < 20; i++) {
      const socket = connect(port, '127.0.0.1');
      await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
      socket.write(
        [
          `POST /api/conversations/${id}/messages HTTP/1.1`,
          'Host: 127.0.0.1',
          'Content-Type: application/json',
          `Content-Length: ${body.length}`,
          '',
          '',
        ].join('\r\n'),
      );
      socket.write(body.subarray(0, 10));
      await pause(5);
      socket.destroy();
    }
    await pause(50);

    expect((await history()).messages).toEqual([]);
    const after = await request(app.getHttpServer())
      .post(`/api/conversations/${id}/messages`)
      .send({ sender: 'agent', content: 'after' });
    expect(after.status).toBe(201);
  });

  it('reads an empty JSON body (Content-Length: 0) as {}', async () => {
    const answer = await rawPost(
      '/api/conversations',
      ['Content-Type: application/json', 'Content-Length: 0'],
      [],
    );

    expect(statusOf(answer)).toBe(201);
  });
});
