import http from 'node:http';
import { createServer } from 'node:net';
import { openEventStream } from './utils/event-stream';
import { freePort, requestJson, ServerProcess, spawnServer } from './utils/spawn-server';

interface Conversation {
  id: string;
  messageCount: number;
  messages: { id: string; seq: number; content: string }[];
}
interface Message {
  id: string;
  seq: number;
  content: string;
}

const post = (server: ServerProcess, id: string, content: string, agent: http.Agent | false) =>
  requestJson<Message>(
    server.baseUrl,
    'POST',
    `/api/conversations/${id}/messages`,
    { sender: 'customer', content },
    agent,
  );

const createConversation = async (server: ServerProcess): Promise<string> => {
  const response = await requestJson<{ id: string }>(server.baseUrl, 'POST', '/api/conversations');
  expect(response.status).toBe(201);
  return response.body.id;
};

/** Runs `task` on `concurrency` lanes until `total` tasks have been started. */
async function lanes(total: number, concurrency: number, task: (i: number) => Promise<void>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) {
        await task(next++);
      }
    }),
  );
}

describe('cluster mode (WORKERS=2, built server over real HTTP)', () => {
  jest.setTimeout(60_000);

  describe('shared store', () => {
    let server: ServerProcess;

    beforeAll(async () => {
      server = await spawnServer({ WORKERS: '2' });
    });

    afterAll(async () => {
      await server.stop();
    });

    it('runs a primary and two workers', () => {
      expect(server.workerPids()).toHaveLength(2);
      expect(server.lines(/^\[primary\] .*Listening on .*: 2 workers/)).toHaveLength(1);
    });

    it('serves every read of 50 conversations, each on a fresh connection, with the right data', async () => {
      const ids: string[] = [];
      for (let i = 0; i < 50; i++) {
        const id = await createConversation(server);
        expect((await post(server, id, `first words of ${i}`, false)).status).toBe(201);
        ids.push(id);
      }
      const reads = await Promise.all(
        ids.flatMap((id, i) =>
          Array.from({ length: 6 }, async () => {
            const response = await requestJson<Conversation>(
              server.baseUrl,
              'GET',
              `/api/conversations/${id}`,
            );
            return { i, id, response };
          }),
        ),
      );
      expect(reads).toHaveLength(300);
      for (const { i, id, response } of reads) {
        expect(response.status).toBe(200);
        expect(response.body.id).toBe(id);
        expect(response.body.messages.map((m) => m.content)).toEqual([`first words of ${i}`]);
      }
    });

    it('keeps seq exactly 1..500 for 500 posts from 25 concurrent connections', async () => {
      const id = await createConversation(server);
      const agent = new http.Agent({ keepAlive: true, maxSockets: 25 });
      const responses = await Promise.all(
        Array.from({ length: 500 }, (_, i) => post(server, id, `message ${i}`, agent)),
      );
      agent.destroy();
      expect(responses.every((r) => r.status === 201)).toBe(true);
      const seqs = responses.map((r) => r.body.seq).sort((a, b) => a - b);
      expect(seqs).toEqual(Array.from({ length: 500 }, (_, i) => i + 1));
      expect(new Set(responses.map((r) => r.body.id)).size).toBe(500);

      const history = await requestJson<Conversation>(
        server.baseUrl,
        'GET',
        `/api/conversations/${id}`,
      );
      expect(history.body.messageCount).toBe(500);
      expect(new Set(history.body.messages.map((m) => m.id))).toEqual(
        new Set(responses.map((r) => r.body.id)),
      );
    });

    it('loses no acknowledged write when a worker is SIGKILLed under load, and replaces it', async () => {
      const id = await createConversation(server);
      const [victim, survivor] = server.workerPids();
      const acknowledged: string[] = [];
      const failures: string[] = [];
      let killed = false;
      await lanes(3_000, 20, async (i) => {
        if (i === 600 && !killed) {
          killed = true;
          process.kill(victim, 'SIGKILL');
        }
        try {
          const response = await post(server, id, `load ${i}`, false);
          if (response.status === 201) {
            acknowledged.push(response.body.id);
          } else {
            failures.push(`status ${response.status}`);
          }
        } catch (error) {
          // Connection reset or timed out: the request was on the killed worker.
          failures.push((error as Error).message);
        }
      });
      expect(killed).toBe(true);
      // Only requests in flight on the killed worker may fail.
      expect(failures.length).toBeLessThanOrEqual(20);
      expect(failures.filter((failure) => failure.startsWith('status'))).toEqual([]);
      expect(acknowledged.length).toBeGreaterThanOrEqual(2_980);

      const history = await requestJson<Conversation>(
        server.baseUrl,
        'GET',
        `/api/conversations/${id}`,
      );
      const stored = new Set(history.body.messages.map((m) => m.id));
      expect(acknowledged.filter((messageId) => !stored.has(messageId))).toEqual([]);

      await server.waitFor(/Worker \d+ was killed by SIGKILL: starting a replacement/);
      await server.waitFor(/\[worker \d+\].*Serving on port/, 3);
      const pids = server.workerPids();
      expect(pids).toHaveLength(2);
      expect(pids).toContain(survivor);
      expect(pids).not.toContain(victim);
    });
  });

  describe('eviction', () => {
    let server: ServerProcess;

    beforeAll(async () => {
      server = await spawnServer({
        WORKERS: '2',
        CONVERSATION_TTL_MS: '1500',
        EVICTION_CRON: '* * * * * *',
      });
    });

    afterAll(async () => {
      await server.stop();
    });

    it('runs once per tick in the primary only, evicting idle conversations exactly once', async () => {
      const idle = await Promise.all(Array.from({ length: 5 }, () => createConversation(server)));
      const active = await createConversation(server);
      const sweepsBefore = server.lines(/Eviction sweep removed/).length;
      const started = Date.now();
      while (Date.now() - started < 4_500) {
        expect((await post(server, active, 'still here', false)).status).toBe(201);
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
      const elapsedTicks = (Date.now() - started) / 1000;

      for (const id of idle) {
        const response = await requestJson(server.baseUrl, 'GET', `/api/conversations/${id}`);
        expect(response.status).toBe(404);
      }
      const kept = await requestJson<Conversation>(
        server.baseUrl,
        'GET',
        `/api/conversations/${active}`,
      );
      expect(kept.status).toBe(200);

      const sweeps = server.lines(/Eviction sweep removed/);
      expect(sweeps.every((line) => line.startsWith('[primary]'))).toBe(true);
      const during = sweeps.length - sweepsBefore;
      // One sweep per one-second tick: never two processes sweeping the same tick.
      expect(during).toBeGreaterThanOrEqual(Math.floor(elapsedTicks) - 1);
      expect(during).toBeLessThanOrEqual(Math.ceil(elapsedTicks) + 1);
      const removed = sweeps
        .map((line) => Number(/removed (\d+)/.exec(line)?.[1]))
        .reduce((sum, n) => sum + n, 0);
      expect(removed).toBe(5);
    });
  });

  describe('the inbox across workers', () => {
    let server: ServerProcess;

    beforeAll(async () => {
      server = await spawnServer({ WORKERS: '2' });
    });

    afterAll(async () => {
      await server.stop();
    });

    it('a claim race over fresh connections to both workers: one winner, one seq, one event', async () => {
      const id = await createConversation(server);
      const stream = await openEventStream(server.baseUrl, `/api/conversations/${id}/events`);
      const answers = await Promise.all(
        Array.from({ length: 30 }, (_, i) =>
          requestJson<{ seq: number; assignee: string }>(
            server.baseUrl,
            'POST',
            `/api/conversations/${id}/claim`,
            { assignee: `agent-${i}` },
          ),
        ),
      );

      const won = answers.filter((res) => res.status === 200);
      expect(won).toHaveLength(1);
      const winner = won[0].body.assignee;
      expect(won[0].body.seq).toBe(1);
      for (const res of answers.filter((one) => one.status !== 200)) {
        expect(res.status).toBe(409);
        expect(res.body).toMatchObject({ code: 'already_assigned', assignee: winner });
      }
      const [event] = await stream.waitForEvents(1);
      expect(event.id).toBe('1');
      expect(JSON.parse(event.data)).toMatchObject({
        seq: 1,
        changed: ['assignee'],
        assignee: winner,
      });
      expect((await post(server, id, 'after the race', false)).body.seq).toBe(2);
      await stream.waitForEvents(2);
      expect(stream.events.map((e) => e.event)).toEqual([
        'conversation.updated',
        'message.created',
      ]);
      stream.close();
    });

    it('the primary wakes a snooze on time: every worker reads it open, the streams get the wake', async () => {
      const id = await createConversation(server);
      const stream = await openEventStream(server.baseUrl, `/api/conversations/${id}/events`);
      const feeds = await Promise.all(
        [1, 2].map(() => openEventStream(server.baseUrl, '/api/conversations/events')),
      );
      await Promise.all(feeds.map((feed) => feed.waitForEvents(1)));
      const until = Date.now() + 1_500;
      const snoozed = await requestJson(server.baseUrl, 'PATCH', `/api/conversations/${id}`, {
        status: 'snoozed',
        snoozedUntil: until,
      });
      expect(snoozed.status).toBe(200);

      await new Promise((resolve) => setTimeout(resolve, until - Date.now() + 5));
      // Fresh connections: both workers answer.
      const reads = await Promise.all(
        [1, 2, 3, 4].map(() =>
          requestJson<{ status: string }>(server.baseUrl, 'GET', `/api/conversations/${id}`),
        ),
      );
      expect(reads.map((read) => read.body.status)).toEqual(['open', 'open', 'open', 'open']);
      const [, woken] = await stream.waitForEvents(2, Math.max(until + 1_000 - Date.now(), 1));
      expect(JSON.parse(woken.data)).toMatchObject({ seq: 2, status: 'open', snoozedUntil: null });
      for (const feed of feeds) {
        const events = await feed.waitForEvents(3, 1_000);
        expect(JSON.parse(events[2].data)).toMatchObject({ id, seq: 2, status: 'open' });
        feed.close();
      }
      stream.close();
    });

    it('every feed, on either worker, gets the changes made through the other', async () => {
      // Fresh connections: the primary shares them out between the workers.
      const feeds = await Promise.all(
        [1, 2, 3, 4].map(() => openEventStream(server.baseUrl, '/api/conversations/events')),
      );
      await Promise.all(feeds.map((feed) => feed.waitForEvents(1)));
      const started = Date.now();
      const id = await createConversation(server);
      expect((await post(server, id, 'hello', false)).status).toBe(201);
      const patched = await requestJson(server.baseUrl, 'PATCH', `/api/conversations/${id}`, {
        status: 'pending',
        team: 'billing',
      });
      expect(patched.status).toBe(200);

      for (const feed of feeds) {
        const events = await feed.waitForEvents(4, 1_000 + (Date.now() - started));
        expect(events[0]).toEqual({ event: 'reset', data: '{}' });
        const rows = events.slice(1).map((e) => ({ event: e.event, ...JSON.parse(e.data) }));
        expect(rows).toEqual([
          expect.objectContaining({ event: 'conversation.created', id, seq: 0 }),
          expect.objectContaining({ event: 'conversation.updated', id, seq: 1, messageCount: 1 }),
          expect.objectContaining({
            event: 'conversation.updated',
            id,
            seq: 2,
            status: 'pending',
            team: 'billing',
          }),
        ]);
        feed.close();
      }
      const listed = await requestJson<{ conversations: { id: string; status: string }[] }>(
        server.baseUrl,
        'GET',
        `/api/conversations?status=pending&team=billing`,
      );
      expect(listed.body.conversations.map((row) => [row.id, row.status])).toEqual([
        [id, 'pending'],
      ]);
    });
  });

  describe('graceful stop', () => {
    it('finishes accepted requests on SIGTERM and exits 0 within 10 s', async () => {
      const server = await spawnServer({ WORKERS: '2' });
      const id = await createConversation(server);

      // An idle keep-alive connection must not hold the stop up.
      const idleAgent = new http.Agent({ keepAlive: true });
      expect((await post(server, id, 'warm-up', idleAgent)).status).toBe(201);

      // Requests whose headers the workers have read, with bodies still to come.
      const body = JSON.stringify({ sender: 'agent', content: 'sent across the stop' });
      const inFlight = Array.from({ length: 6 }, () => {
        const request = http.request(`${server.baseUrl}/api/conversations/${id}/messages`, {
          method: 'POST',
          agent: false,
          headers: { 'content-type': 'application/json', 'content-length': body.length },
        });
        request.write(body.slice(0, 10));
        return {
          request,
          response: new Promise<number>((resolve, reject) => {
            request.on('response', (response) => {
              response.resume();
              response.on('end', () => resolve(response.statusCode ?? 0));
            });
            request.on('error', reject);
          }),
        };
      });
      await new Promise((resolve) => setTimeout(resolve, 300));

      const stopAt = Date.now();
      server.child.kill('SIGTERM');
      await server.waitFor(/Shutdown ordered by the primary: draining/, 2);
      for (const { request } of inFlight) {
        request.end(body.slice(10));
      }
      expect(await Promise.all(inFlight.map(({ response }) => response))).toEqual(
        Array(6).fill(201),
      );

      const { code } = await server.exited;
      idleAgent.destroy();
      expect(code).toBe(0);
      expect(Date.now() - stopAt).toBeLessThan(10_000);
    });
  });

  describe('workers that keep crashing', () => {
    it('makes the primary log why and exit non-zero', async () => {
      // Another process holds the port, so every worker fails to listen and exits.
      const port = await freePort();
      const squatter = createServer();
      await new Promise<void>((resolve) => squatter.listen(port, '127.0.0.1', resolve));
      try {
        const server = await spawnServer({ WORKERS: '2' }, { port, waitUntilReady: false });
        const { code } = await server.exited;
        expect(code).toBe(1);
        expect(
          server.lines(/^\[primary\].*Stopping: workers crashed 5 times within 30 s/),
        ).toHaveLength(1);
        expect(server.lines(/starting a replacement in \d+ ms/).length).toBeGreaterThanOrEqual(3);
      } finally {
        squatter.close();
      }
    });
  });
});
