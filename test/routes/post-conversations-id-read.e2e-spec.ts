import { useServer } from '../utils/spawn-server';
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
  TYPING_TTL_MS,
} from '../utils/typing-read';

// Who may send a read as whom, 404 and 400 are tested with POST .../typing's, which follows the
// same rules: post-conversations-id-typing.e2e-spec.ts. Reads replayed after Last-Event-ID:
// get-conversations-id-events.e2e-spec.ts.
describe('POST /api/conversations/{id}/read', () => {
  describe('typing and read receipts (built server, WORKERS=2, API_KEYS set)', () => {
    jest.setTimeout(60_000);
    const server = useServer(TYPING_READ_ENV);

    it('tells subscribers on every worker of typing and reads sent through either', async () => {
      const { id, customerToken } = await create(server());
      // Fresh connections: the primary shares the streams out between both workers.
      const streams = await Promise.all([1, 2, 3, 4].map(() => stream(server(), id)));
      expect((await post(server(), id, 'hello')).body.seq).toBe(1);

      const before = Date.now();
      expect((await typing(server(), id, { sender: 'agent' })).status).toBe(204);
      const after = Date.now();
      const answer = await read(server(), id, { sender: 'customer', seq: 1 }, customerToken);
      expect(answer).toEqual({ status: 200, body: { lastRead: { customer: 1, agent: 0 } } });

      for (const client of streams) {
        const events = await client.waitForEvents(3, 2_000);
        expect(events[0]).toMatchObject({ id: '1', event: 'message.created' });
        // No id line: a typing event has no seq.
        expect(events[1]).toEqual({ event: 'typing', data: expect.any(String) });
        const signal = JSON.parse(events[1].data) as Record<string, unknown>;
        expect(Object.keys(signal)).toEqual(['sender', 'typing', 'expiresAt']);
        expect(signal).toMatchObject({ sender: 'agent', typing: true });
        expect(signal.expiresAt).toBeGreaterThanOrEqual(before + TYPING_TTL_MS - 50);
        expect(signal.expiresAt).toBeLessThanOrEqual(after + TYPING_TTL_MS + 50);
        // The read takes the next seq, and its id is that seq.
        expect(events[2]).toEqual({
          id: '2',
          event: 'conversation.read',
          data: JSON.stringify({ sender: 'customer', seq: 1 }),
        });
      }

      // At or below the horizon: the current state, no event, no seq.
      expect(await read(server(), id, { sender: 'customer', seq: 0 }, customerToken)).toEqual(
        answer,
      );
      expect(await read(server(), id, { sender: 'customer', seq: 1 })).toEqual(answer);
      // The next message follows the read.
      expect((await post(server(), id, 'next')).body.seq).toBe(3);
      expect((await read(server(), id, { sender: 'agent', seq: 3 })).body).toEqual({
        lastRead: { customer: 1, agent: 3 },
      });
      for (const client of streams) {
        const events = await client.waitForEvents(5, 2_000);
        expect(events.slice(3).map((event) => `${event.id} ${event.event}`)).toEqual([
          '3 message.created',
          '4 conversation.read',
        ]);
        await settle(100);
        expect(client.events).toHaveLength(5);
        client.close();
      }

      const history = await call<{ lastRead: unknown; messageCount: number }>(
        server(),
        'GET',
        `/api/conversations/${id}`,
        customerToken,
      );
      expect(history.body).toMatchObject({ lastRead: { customer: 1, agent: 3 }, messageCount: 2 });
    });

    it('settles two sides that each acknowledge the latest event id they received', async () => {
      const { id, customerToken } = await create(server());
      const watcher = await stream(server(), id);
      await post(server(), id, 'one');
      await post(server(), id, 'two');
      await watcher.waitForEvents(2, 2_000);
      const credentials = { customer: customerToken, agent: API_KEY };
      let horizons = { customer: 0, agent: 0 };
      let moves = 0;
      for (let round = 0; round < 10; round++) {
        for (const sender of ['customer', 'agent'] as const) {
          const latest = Number(watcher.events.at(-1)?.id);
          const answer = await read(server(), id, { sender, seq: latest }, credentials[sender]);
          expect(answer.status).toBe(200);
          const lastRead = (answer.body as { lastRead: typeof horizons }).lastRead;
          if (lastRead[sender] !== horizons[sender]) {
            moves++;
            await watcher.waitForEvents(2 + moves, 2_000);
          }
          horizons = lastRead;
        }
      }
      // Each side moves once, to the last message; the receipts of receipts change nothing.
      expect(moves).toBeLessThanOrEqual(2);
      expect(horizons).toEqual({ customer: 2, agent: 2 });
      await settle(200);
      expect(watcher.events.map((event) => `${event.id} ${event.event}`)).toEqual([
        '1 message.created',
        '2 message.created',
        '3 conversation.read',
        '4 conversation.read',
      ]);
      watcher.close();
    });
  });
});
