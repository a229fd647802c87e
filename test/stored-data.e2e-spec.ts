import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describeWithRedis, TestRedis } from './utils/redis';
import { requestText, ServerProcess, spawnServer } from './utils/spawn-server';
import {
  FixtureAnswers,
  FixtureMeta,
  Answer,
  loadRedis,
  RecordedExchange,
  RedisExport,
  send,
  STORED_DATA_DIR,
  StoreKind,
} from './utils/stored-data';

/**
 * Data written by an earlier build (test/fixtures/stored-data, from b9a302c; see its
 * generate.ts), read by this one: a snapshot file for the in-memory store and an export of a
 * Redis data set. Whatever changes in how records are stored, the data already in the field
 * must read back the same: every recorded answer byte for byte, customer tokens and kept
 * Idempotency-Keys still good, each conversation's seq carrying on. Checked over HTTP only.
 */

interface Fixture {
  meta: FixtureMeta;
  answers: FixtureAnswers;
}

function fixture(store: StoreKind): Fixture {
  const read = (file: string) =>
    JSON.parse(readFileSync(path.join(STORED_DATA_DIR, store, file), 'utf8')) as unknown;
  return {
    meta: read('meta.json') as FixtureMeta,
    answers: read('answers.json') as FixtureAnswers,
  };
}

/** Starts the current build on a fresh copy of the fixture's data, with more settings. */
type Start = (env: Record<string, string>) => Promise<{ server: ServerProcess; done(): void }>;

interface Message {
  id: string;
  seq: number;
  createdAt: number;
}

interface History {
  lastActivityAt: number;
  messageCount: number;
  lastRead: { customer: number; agent: number };
  messages: Message[];
}

const bearer = (credential: string) => ({ Authorization: `Bearer ${credential}` });

/**
 * What a recorded read answers now. A history read (GET /api/conversations/{id}) has, since
 * the inbox, the conversation's state before its messages: data written before the inbox
 * reads as open, unassigned, with no customer details or metadata, its unread counts and
 * waitingSince counted from its messages (seq order) and read horizons; a customer token
 * sees its part of that. Every byte recorded is still there, in order.
 */
function answerNow(read: RecordedExchange, apiKeys: Set<string>): Answer {
  if (read.method !== 'GET' || !/^\/api\/conversations\/[^/?]+$/.test(read.path)) {
    return read.answer;
  }
  if (read.answer.status !== 200) {
    return read.answer;
  }
  const { messages, ...header } = JSON.parse(read.answer.text) as History & {
    messages: (Message & { sender: string })[];
  };
  const bySeq = [...messages].sort((a, b) => a.seq - b.seq);
  const unreadAgent = bySeq.filter((m) => m.sender === 'customer' && m.seq > header.lastRead.agent);
  const unreadCustomer = bySeq.filter(
    (m) => m.sender === 'agent' && m.seq > header.lastRead.customer,
  );
  let waitingSince: number | null = null;
  for (const message of bySeq) {
    if (message.sender === 'agent') {
      waitingSince = null;
    } else {
      waitingSince ??= message.createdAt;
    }
  }
  const agentView = apiKeys.has(read.headers.Authorization);
  const state = agentView
    ? {
        status: 'open',
        snoozedUntil: null,
        assignee: null,
        team: null,
        customer: {},
        unread: { customer: unreadCustomer.length, agent: unreadAgent.length },
        waitingSince,
        metadata: {},
      }
    : {
        status: 'open',
        snoozedUntil: null,
        customer: {},
        unread: { customer: unreadCustomer.length },
      };
  return { ...read.answer, text: JSON.stringify({ ...header, ...state, messages }) };
}

/** Starts a server for the tests of the enclosing describe, and stops it after them. */
function useFixtureServer(start: Start, env: Record<string, string>): () => ServerProcess {
  let started: { server: ServerProcess; done(): void } | undefined;
  beforeAll(async () => {
    started = await start(env);
  }, 60_000);
  afterAll(async () => {
    await started?.server.stop();
    started?.done();
  }, 30_000);
  return () => {
    if (!started) {
      throw new Error('the server has not started');
    }
    return started.server;
  };
}

function readsBack({ meta, answers }: Fixture, start: Start): void {
  const [apiKey] = meta.apiKeys;
  const keyed = new Set(meta.apiKeys.map((key) => bearer(key).Authorization));
  const recorded = (name: string) => {
    const found = answers.reads.find((read) => read.name === name);
    if (!found) {
      throw new Error(`no recorded read "${name}"`);
    }
    return found.answer;
  };
  const posts = answers.retries.filter((retry) => retry.path !== '/api/conversations');
  const creates = answers.retries.filter((retry) => retry.path === '/api/conversations');

  describe('in cluster mode (WORKERS=2)', () => {
    const server = useFixtureServer(start, { WORKERS: '2' });

    it('answers every recorded read and refusal byte for byte', async () => {
      const actual = [];
      for (const request of answers.reads) {
        actual.push({ name: request.name, ...(await send(server().baseUrl, request)) });
      }
      expect(actual).toEqual(
        answers.reads.map((read) => ({ name: read.name, ...answerNow(read, keyed) })),
      );
    });

    it('replays kept Idempotency-Keys of posts with their first answers', async () => {
      expect(posts.length).toBeGreaterThan(0);
      const actual = [];
      for (const request of posts) {
        actual.push({ name: request.name, ...(await send(server().baseUrl, request)) });
      }
      expect(actual).toEqual(posts.map(({ name, answer }) => ({ name, ...answer })));
    });

    it("carries on each conversation's seq, with its customer token", async () => {
      for (const conversation of meta.conversations) {
        const base = `/api/conversations/${conversation.id}`;
        let nextSeq = conversation.lastSeq + 1;
        if (conversation.full) {
          // Its refused post is among the reads; a deletion makes room, and takes a seq.
          const { messages } = JSON.parse(
            recorded(`${conversation.label}: history (API key)`).text,
          ) as History;
          const deleted = await requestText(
            server().baseUrl,
            'DELETE',
            `${base}/messages/${messages[0].id}`,
            {
              headers: bearer(apiKey),
            },
          );
          expect([conversation.label, deleted.status]).toEqual([conversation.label, 200]);
          nextSeq++;
        } else {
          expect([conversation.label, nextSeq]).toEqual([
            conversation.label,
            answers.nextSeq[conversation.label],
          ]);
        }
        const posted = await requestText(server().baseUrl, 'POST', `${base}/messages`, {
          body: { sender: 'customer', content: `After the upgrade: ${conversation.label} ✓` },
          headers: bearer(conversation.customerToken),
        });
        expect([conversation.label, posted.status]).toEqual([conversation.label, 201]);
        const message = JSON.parse(posted.text) as Message;
        expect([conversation.label, message.seq]).toEqual([conversation.label, nextSeq]);

        if (!conversation.full) {
          // The history as recorded (as it reads now), with the new message at its end: one
          // more unread for the agent, and the customer waiting since it if not already.
          const name = `${conversation.label}: history (API key)`;
          const before = JSON.parse(
            answerNow(answers.reads.find((read) => read.name === name) as RecordedExchange, keyed)
              .text,
          ) as History & { unread: { agent: number }; waitingSince: number | null };
          const after = await requestText(server().baseUrl, 'GET', base, {
            headers: bearer(apiKey),
          });
          expect(JSON.parse(after.text)).toEqual({
            ...before,
            lastActivityAt: message.createdAt,
            messageCount: before.messageCount + 1,
            unread: { ...before.unread, agent: before.unread.agent + 1 },
            waitingSince: before.waitingSince ?? message.createdAt,
            messages: [...before.messages, message],
          });
        }

        const read = await requestText(server().baseUrl, 'POST', `${base}/read`, {
          body: { sender: 'agent', seq: message.seq },
          headers: bearer(apiKey),
        });
        expect([conversation.label, read.status]).toEqual([conversation.label, 200]);
        expect((JSON.parse(read.text) as History).lastRead.agent).toBe(message.seq);
        const again = await requestText(server().baseUrl, 'POST', `${base}/messages`, {
          body: { sender: 'agent', content: 'And again.' },
          headers: bearer(apiKey),
        });
        const expected = conversation.full ? 409 : 201;
        expect([conversation.label, again.status]).toEqual([conversation.label, expected]);
        if (!conversation.full) {
          expect((JSON.parse(again.text) as Message).seq).toBe(nextSeq + 2);
        }
      }
    });

    // Last: a replayed create replaces the conversation's customer token.
    it('replays kept Idempotency-Keys of creates: the same conversation, a new token that works', async () => {
      expect(creates.length).toBeGreaterThan(0);
      for (const request of creates) {
        const answer = await send(server().baseUrl, request);
        expect([request.name, answer.status, answer.headers]).toEqual([
          request.name,
          request.answer.status,
          request.answer.headers,
        ]);
        const { customerToken, ...created } = JSON.parse(answer.text) as {
          id: string;
          customerToken: string;
        };
        const { customerToken: first, ...expected } = JSON.parse(request.answer.text) as {
          customerToken: string;
        };
        expect(created).toEqual(expected);
        expect(customerToken).not.toBe(first);
        const read = await requestText(
          server().baseUrl,
          'GET',
          `/api/conversations/${created.id}`,
          {
            headers: bearer(customerToken),
          },
        );
        expect([request.name, read.status]).toEqual([request.name, 200]);
      }
    });
  });

  describe('in one process, with RATE_LIMIT_MAX=1', () => {
    const server = useFixtureServer(start, {
      WORKERS: '0',
      RATE_LIMIT_MAX: '1',
      RATE_LIMIT_WINDOW_MS: '600000',
    });

    it('counts anonymous tokens against their address too, and tokens minted with a key alone', async () => {
      // All the anonymous tokens of one address get 10 × RATE_LIMIT_MAX requests between them.
      const anonymous = meta.conversations.filter((c) => c.anonymous);
      const minted = meta.conversations.filter((c) => !c.anonymous);
      expect(anonymous.length).toBeGreaterThanOrEqual(11);
      const get = (id: string, token: string) =>
        requestText(server().baseUrl, 'GET', `/api/conversations/${id}`, {
          headers: bearer(token),
        });
      const statuses = [];
      for (const conversation of anonymous.slice(0, 11)) {
        statuses.push((await get(conversation.id, conversation.customerToken)).status);
      }
      expect(statuses).toEqual([...Array<number>(10).fill(200), 429]);
      for (const conversation of minted) {
        expect([
          conversation.label,
          (await get(conversation.id, conversation.customerToken)).status,
        ]).toEqual([conversation.label, 200]);
      }
    });

    it('answers the recorded reads made with an API key byte for byte', async () => {
      const withKey = answers.reads.filter((read) => keyed.has(read.headers.Authorization));
      const actual = [];
      for (const request of withKey) {
        actual.push({ name: request.name, ...(await send(server().baseUrl, request)) });
      }
      expect(actual).toEqual(
        withKey.map((read) => ({ name: read.name, ...answerNow(read, keyed) })),
      );
    });
  });
}

describe('stored data from b9a302c: a snapshot file (SNAPSHOT_PATH)', () => {
  jest.setTimeout(60_000);
  const data = fixture('memory');
  readsBack(data, async (env) => {
    const dir = mkdtempSync(path.join(tmpdir(), 'chat-stored-data-'));
    const file = path.join(dir, 'snapshot.jsonl');
    copyFileSync(path.join(STORED_DATA_DIR, 'memory', 'snapshot.jsonl'), file);
    const server = await spawnServer({ ...data.meta.env, SNAPSHOT_PATH: file, ...env });
    return { server, done: () => rmSync(dir, { recursive: true, force: true }) };
  });
});

describeWithRedis(
  'stored data from b9a302c: a Redis data set (STORE=redis)',
  (redis: () => TestRedis) => {
    jest.setTimeout(60_000);
    const data = fixture('redis');
    const exported = JSON.parse(
      readFileSync(path.join(STORED_DATA_DIR, 'redis', 'export.json'), 'utf8'),
    ) as RedisExport;
    // Each server gets the data loaded under a prefix of its own, deleted after the suite.
    readsBack(data, async (env) => {
      const prefix = redis().newPrefix();
      await loadRedis(redis().admin, prefix, exported.keys);
      const server = await spawnServer({
        ...data.meta.env,
        STORE: 'redis',
        REDIS_URL: redis().url,
        REDIS_KEY_PREFIX: prefix,
        ...env,
      });
      return { server, done: () => undefined };
    });
  },
);
