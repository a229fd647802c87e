import { NestExpressApplication } from '@nestjs/platform-express';
import request from 'supertest';
import { ConversationRepository } from '../src/conversations/conversation.repository';
import { IpcConversationRepository } from '../src/conversations/repositories/ipc/ipc-conversation.repository';
import { MessagePort } from '../src/cluster/message-port';
import { createTestApp } from './utils/create-app';

/** A primary that never answers: every store call times out. */
const silentPrimary: MessagePort = {
  send: () => undefined,
  onMessage: () => () => undefined,
  onClose: () => () => undefined,
};

describe('a store that does not answer', () => {
  let app: NestExpressApplication;

  beforeAll(async () => {
    app = await createTestApp({
      override: (builder) =>
        builder
          .overrideProvider(ConversationRepository)
          .useValue(new IpcConversationRepository(silentPrimary, 100)),
    });
  });

  afterAll(async () => {
    await app.close();
  });

  it.each([
    ['POST', '/api/conversations'],
    ['GET', '/api/conversations/3f2b9c1e-8a4d-4c7e-9b1a-2d5e6f7a8b9c'],
  ])('answers %s %s with 503 store_unavailable within the timeout', async (method, path) => {
    const started = Date.now();
    const response = await request(app.getHttpServer())[method === 'POST' ? 'post' : 'get'](path);
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(response.status).toBe(503);
    expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(response.headers['retry-after']).toBe('1');
    expect(response.body).toEqual({
      type: 'urn:chat-server:problem:store-unavailable',
      title: 'Service Unavailable',
      status: 503,
      detail: 'The store did not answer in time. Retry later.',
      code: 'store_unavailable',
      requestId: response.headers['x-request-id'],
    });
  });
});
