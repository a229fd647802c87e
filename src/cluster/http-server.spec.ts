import { Controller, Get, INestApplication, Post } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import { JsonText } from '../http/json-text';
import { TimedExpressAdapter } from './http-server';

interface Dto {
  id: string;
  content: string;
}

const SMALL: Dto = { id: 'a', content: 'é€😀 "quoted"' };
/** Past the size that sendJsonPieces writes piece by piece. */
const LARGE: Dto = { id: 'b', content: `€${'x'.repeat(20_000)}` };

@Controller()
class AnswersController {
  @Post('text')
  postText(): JsonText<Dto> {
    return JsonText.of(SMALL);
  }

  @Post('dto')
  postDto(): Dto {
    return SMALL;
  }

  @Get('pieces')
  getPieces(): Promise<JsonText<Dto>> {
    const json = JSON.stringify(LARGE);
    return Promise.resolve(new JsonText([json.slice(0, 7), json.slice(7, 9001), json.slice(9001)]));
  }

  @Get('dto')
  getDto(): Dto {
    return LARGE;
  }
}

/** What a client sees of an answer, but the date. */
function seen(res: request.Response) {
  const headers: Record<string, unknown> = { ...res.headers };
  delete headers.date;
  return { status: res.status, headers, text: res.text };
}

describe("TimedExpressAdapter's reply", () => {
  let app: INestApplication;

  beforeAll(async () => {
    const moduleRef = await Test.createTestingModule({
      controllers: [AnswersController],
    }).compile();
    app = moduleRef.createNestApplication(new TimedExpressAdapter({}), { logger: false });
    (app.getHttpAdapter().getInstance() as { set(name: string, value: boolean): void }).set(
      'etag',
      false,
    );
    await app.init();
  });

  afterAll(async () => {
    await app.close();
  });

  it('sends JSON text as Nest sends the DTO it serializes', async () => {
    const server = app.getHttpServer();
    const expected = seen(await request(server).post('/dto'));
    expect(expected.status).toBe(201);
    expect(JSON.parse(expected.text)).toEqual(SMALL);

    expect(seen(await request(server).post('/text'))).toEqual(expected);
  });

  it('sends JSON text in pieces as one body, with its length', async () => {
    const server = app.getHttpServer();
    const expected = seen(await request(server).get('/dto'));
    expect(expected.status).toBe(200);
    expect(expected.headers['content-length']).toBe(String(Buffer.byteLength(expected.text)));

    expect(seen(await request(server).get('/pieces'))).toEqual(expected);
  });
});
