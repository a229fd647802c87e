import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { requestJson, requestText, spawnServer } from './utils/spawn-server';

interface History {
  id: string;
  messageCount: number;
  lastRead: { customer: number; agent: number };
  messages: { id: string; seq: number; content: string }[];
}

describe('SNAPSHOT_PATH (built server, WORKERS=2)', () => {
  jest.setTimeout(60_000);
  const dir = mkdtempSync(path.join(tmpdir(), 'chat-snapshot-'));
  const file = path.join(dir, 'store.jsonl');
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('keeps every conversation, message and read horizon across a graceful restart', async () => {
    const first = await spawnServer({ WORKERS: '2', SNAPSHOT_PATH: file });
    const ids: string[] = [];
    for (let c = 0; c < 5; c++) {
      const { body } = await requestJson<{ id: string }>(
        first.baseUrl,
        'POST',
        '/api/conversations',
      );
      ids.push(body.id);
      for (let m = 0; m < 4; m++) {
        const posted = await requestJson(
          first.baseUrl,
          'POST',
          `/api/conversations/${body.id}/messages`,
          {
            sender: m % 2 ? 'agent' : 'customer',
            content: `c${c} m${m} ✓`,
            timestamp: 1_000 + (3 - m), // out of order: the history is chronological
          },
        );
        expect(posted.status).toBe(201);
      }
    }
    const deletedFrom = (
      await requestJson<History>(first.baseUrl, 'GET', `/api/conversations/${ids[0]}`)
    ).body;
    await requestJson(
      first.baseUrl,
      'DELETE',
      `/api/conversations/${ids[0]}/messages/${deletedFrom.messages[0].id}`,
    );
    // Read horizons take seqs 6 and 7. Seq 4 (the earliest message) is deleted, so each receipt
    // names a message that stands: a receipt is taken down to one (docs/api.md).
    for (const [sender, seq] of [
      ['agent', 2],
      ['customer', 3],
    ] as const) {
      const read = await requestJson(first.baseUrl, 'POST', `/api/conversations/${ids[0]}/read`, {
        sender,
        seq,
      });
      expect(read.status).toBe(200);
    }
    const before = await Promise.all(
      ids.map(
        async (id) =>
          (await requestJson<History>(first.baseUrl, 'GET', `/api/conversations/${id}`)).body,
      ),
    );
    const { code } = await first.stop('SIGTERM');
    expect(code).toBe(0);
    expect(readFileSync(file, 'utf8').trim().split('\n')).toHaveLength(5);
    expect(statSync(file).mode & 0o777).toBe(0o600);

    const second = await spawnServer({ WORKERS: '2', SNAPSHOT_PATH: file });
    try {
      expect(second.lines(/Restored 5 conversation\(s\)/)).toHaveLength(1);
      const after = await Promise.all(
        ids.map(
          async (id) =>
            (await requestJson<History>(second.baseUrl, 'GET', `/api/conversations/${id}`)).body,
        ),
      );
      expect(after).toEqual(before);
      expect(after[0].lastRead).toEqual({ customer: 3, agent: 2 });
      // The next change takes the next seq: 4 posts, a delete and 2 reads took 1..7 in the first.
      const next = await requestJson<{ seq: number }>(
        second.baseUrl,
        'POST',
        `/api/conversations/${ids[0]}/messages`,
        {
          sender: 'agent',
          content: 'after the restart',
        },
      );
      expect(next.body.seq).toBe(8);
    } finally {
      await second.stop();
    }
  });

  it('keeps a message holding U+2028 and U+2029 across a graceful restart', async () => {
    const separators = path.join(dir, 'separators.jsonl');
    const first = await spawnServer({ WORKERS: '2', SNAPSHOT_PATH: separators });
    const { body } = await requestJson<{ id: string }>(first.baseUrl, 'POST', '/api/conversations');
    const content = 'line\u2028separator\u2029paragraph\nnewline';
    const posted = await requestJson(
      first.baseUrl,
      'POST',
      `/api/conversations/${body.id}/messages`,
      {
        sender: 'customer',
        content,
      },
    );
    expect(posted.status).toBe(201);
    const before = await requestText(first.baseUrl, 'GET', `/api/conversations/${body.id}`);
    expect((await first.stop('SIGTERM')).code).toBe(0);
    const written = readFileSync(separators, 'utf8');
    expect(written).not.toMatch(/[\u2028\u2029]/);
    // Read back as b9a302c and earlier wrote it, with the two characters raw.
    writeFileSync(separators, written.replace(/\\u2028/g, '\u2028').replace(/\\u2029/g, '\u2029'));

    const second = await spawnServer({ WORKERS: '2', SNAPSHOT_PATH: separators });
    try {
      expect(second.lines(/Restored 1 conversation\(s\)/)).toHaveLength(1);
      const after = await requestText(second.baseUrl, 'GET', `/api/conversations/${body.id}`);
      expect(after.text).toBe(before.text);
      expect((JSON.parse(after.text) as History).messages[0].content).toBe(content);
    } finally {
      await second.stop();
    }
  });

  it('keeps Idempotency-Keys across a graceful restart: retries are replayed, nothing is stored twice', async () => {
    const createKey = { 'Idempotency-Key': randomUUID() };
    const postKey = { 'Idempotency-Key': randomUUID() };
    const message = { sender: 'customer', content: 'before the restart' };
    const first = await spawnServer({ WORKERS: '2', SNAPSHOT_PATH: file });
    const created = await requestText(first.baseUrl, 'POST', '/api/conversations', {
      headers: createKey,
    });
    const { id } = JSON.parse(created.text) as { id: string };
    const path = `/api/conversations/${id}/messages`;
    const posted = await requestText(first.baseUrl, 'POST', path, {
      body: message,
      headers: postKey,
    });
    expect(posted.status).toBe(201);
    expect((await first.stop('SIGTERM')).code).toBe(0);

    const second = await spawnServer({ WORKERS: '2', SNAPSHOT_PATH: file });
    try {
      const createRetry = await requestText(second.baseUrl, 'POST', '/api/conversations', {
        headers: createKey,
      });
      expect(createRetry.headers['idempotent-replayed']).toBe('true');
      expect((JSON.parse(createRetry.text) as { id: string }).id).toBe(id);
      const postRetry = await requestText(second.baseUrl, 'POST', path, {
        body: message,
        headers: postKey,
      });
      expect(postRetry.headers['idempotent-replayed']).toBe('true');
      expect(postRetry.text).toBe(posted.text);
      const history = await requestJson<History>(second.baseUrl, 'GET', `/api/conversations/${id}`);
      expect(history.body.messageCount).toBe(1);
    } finally {
      await second.stop();
    }
  });
});
