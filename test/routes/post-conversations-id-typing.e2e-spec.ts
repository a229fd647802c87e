import http from 'node:http';
import { requestText, unknownId, useServer } from '../utils/spawn-server';
import {
  API_KEY,
  call,
  create,
  post,
  read,
  settle,
  stream,
  typing,
  TYPING_READ_ENV,
  typingEvents,
} from '../utils/typing-read';

// The rules this route shares with POST .../read (who may send as whom, 404, 400) are tested
// for both routes at once, here.
describe('POST /api/conversations/{id}/typing', () => {
  describe('typing and read receipts (built server, WORKERS=2, API_KEYS set)', () => {
    jest.setTimeout(60_000);
    const server = useServer(TYPING_READ_ENV);

    it('lets a customer token send typing and reads as customer only, on its own conversation', async () => {
      const { id, customerToken } = await create(server());
      const other = await create(server());
      await post(server(), id, 'hi');

      for (const [route, body] of [
        ['typing', { sender: 'agent' }],
        ['read', { sender: 'agent', seq: 1 }],
      ] as const) {
        const refused = await call(
          server(),
          'POST',
          `/api/conversations/${id}/${route}`,
          customerToken,
          body,
        );
        expect(refused.status).toBe(403);
        expect(refused.body).toMatchObject({ code: 'sender_not_allowed' });
        const elsewhere = await call(
          server(),
          'POST',
          `/api/conversations/${other.id}/${route}`,
          customerToken,
          { ...body, sender: 'customer' },
        );
        expect(elsewhere.status).toBe(404);
        expect(elsewhere.body).toMatchObject({ code: 'conversation_not_found' });
        const anonymous = await requestText(
          server().baseUrl,
          'POST',
          `/api/conversations/${id}/${route}`,
          {
            body: { ...body, sender: 'customer' },
          },
        );
        expect(anonymous.status).toBe(401);
      }
      expect((await typing(server(), id, { sender: 'customer' }, customerToken)).status).toBe(204);
      expect((await read(server(), id, { sender: 'customer', seq: 1 }, customerToken)).status).toBe(
        200,
      );
      // The refused reads changed nothing.
      expect((await read(server(), id, { sender: 'agent', seq: 0 })).body).toEqual({
        lastRead: { customer: 1, agent: 0 },
      });
    });

    it('answers 404 for an unknown conversation and 400 for a bad body or a seq past the last', async () => {
      const { id } = await create(server());
      await post(server(), id, 'hi');
      for (const [route, body] of [
        ['typing', { sender: 'agent' }],
        ['read', { sender: 'agent', seq: 0 }],
      ] as const) {
        const missing = await call(
          server(),
          'POST',
          `/api/conversations/${unknownId()}/${route}`,
          API_KEY,
          body,
        );
        expect(missing.status).toBe(404);
        expect(missing.body).toMatchObject({ code: 'conversation_not_found' });
      }
      const badBodies: [string, unknown][] = [
        ['typing', {}],
        ['typing', { sender: 'bot' }],
        ['typing', { sender: 'agent', typing: 'yes' }],
        ['typing', { sender: 'agent', typing: null }],
        ['typing', { sender: 'agent', extra: 1 }],
        ['read', { sender: 'agent' }],
        ['read', { sender: 'agent', seq: -1 }],
        ['read', { sender: 'agent', seq: 1.5 }],
        ['read', { sender: 'agent', seq: '1' }],
        ['read', { sender: 'agent', seq: 2 }], // beyond the last seq (1)
      ];
      for (const [route, body] of badBodies) {
        const res = await call(
          server(),
          'POST',
          `/api/conversations/${id}/${route}`,
          API_KEY,
          body,
        );
        expect({ route, body, status: res.status, code: res.body.code }).toEqual({
          route,
          body,
          status: 400,
          code: 'validation_failed',
        });
      }
    });

    it('absorbs typing renewals within a second in one process; a stop always goes out', async () => {
      const { id } = await create(server());
      const watcher = await stream(server(), id);
      // One connection: every request reaches the same worker.
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      try {
        for (let i = 0; i < 5; i++) {
          expect((await typing(server(), id, { sender: 'agent' }, API_KEY, agent)).status).toBe(
            204,
          );
        }
        expect((await typing(server(), id, { sender: 'customer' }, API_KEY, agent)).status).toBe(
          204,
        );
        await typing(server(), id, { sender: 'agent', typing: false }, API_KEY, agent);
        await typing(server(), id, { sender: 'agent', typing: false }, API_KEY, agent);
        await settle();
        expect(typingEvents(watcher)).toEqual([
          expect.objectContaining({ sender: 'agent', typing: true }),
          expect.objectContaining({ sender: 'customer', typing: true }),
          expect.objectContaining({ sender: 'agent', typing: false }),
          expect.objectContaining({ sender: 'agent', typing: false }),
        ]);
        // A second later a renewal goes out again.
        await settle(1_000);
        await typing(server(), id, { sender: 'customer' }, API_KEY, agent);
        await typing(server(), id, { sender: 'customer' }, API_KEY, agent);
        await settle();
        expect(typingEvents(watcher).slice(4)).toEqual([
          expect.objectContaining({ sender: 'customer', typing: true }),
        ]);
        // Typing is not a change: nothing in the replay buffer, no id.
        expect(watcher.events.every((event) => event.id === undefined)).toBe(true);
      } finally {
        agent.destroy();
        watcher.close();
      }
    });
  });
});
