import { SystemClock } from '../common/time/clock';
import { EventEmitter } from 'node:events';
import { randomUUID } from 'node:crypto';
import type { Response } from 'express';
import { AccessService } from '../access/access.service';
import { validateConfig } from '../config/app.config';
import { largestMessageFrameBytes, settingsOf } from '../config/app.settings';
import { MetricsService } from '../observability/metrics.service';
import { StoreError } from '../common/errors/store-error';
import { ChangeListener, ChangesAfter, ConversationChange, Watch } from './conversation.repository';
import { messageJson } from './records/message.codec';
import { EventStreamsService, frame } from './event-streams.service';
import { InMemoryConversationRepository } from './repositories/memory/in-memory-conversation.repository';

/**
 * The in-memory store with a connection that can drop: while `connected` is false, changes
 * are not told and reads fail, as with a store whose connection is gone; `reconnect()` tells
 * every watcher of the gap.
 */
class DroppingRepository extends InMemoryConversationRepository {
  connected = true;
  readable = true;
  private readonly listeners = new Set<ChangeListener>();

  override watch(conversationId: string, listener: ChangeListener): Watch {
    this.listeners.add(listener);
    const watch = super.watch(conversationId, {
      change: (change: ConversationChange) => this.connected && listener.change(change),
      gap: () => listener.gap(),
    });
    return {
      ready: watch.ready,
      stop: () => {
        this.listeners.delete(listener);
        watch.stop();
      },
    };
  }

  override changesAfter(conversationId: string, afterSeq: number): Promise<ChangesAfter | null> {
    return this.readable
      ? super.changesAfter(conversationId, afterSeq)
      : Promise.reject(new StoreError('store_unavailable'));
  }

  reconnect(): void {
    this.connected = true;
    this.listeners.forEach((listener) => listener.gap());
  }
}

/**
 * Just enough of an express Response for a stream: what is written, and whether it ended.
 * While `paused`, what is written stays in its buffer (`writableLength`) and write answers
 * false, as a socket whose client stops reading does; `read()` is the client taking it all.
 */
function fakeResponse() {
  const emitter = new EventEmitter();
  const res = Object.assign(emitter, {
    destroyed: false,
    ended: false,
    paused: false,
    writableLength: 0,
    writableFinished: false,
    text: '',
    req: {
      headers: {},
      query: {},
      method: 'GET',
      path: '/api/conversations/x/events',
      ip: '127.0.0.1',
    },
    status: () => res,
    setHeader: () => res,
    flushHeaders: () => undefined,
    write: (chunk: string) => {
      res.text += chunk;
      if (res.paused) {
        res.writableLength += Buffer.byteLength(chunk);
      }
      return !res.paused;
    },
    end: () => {
      res.ended = true;
      if (res.writableLength === 0) {
        res.writableFinished = true;
        emitter.emit('close');
      }
    },
    destroy: () => {
      res.destroyed = true;
      emitter.emit('close');
    },
    read: () => {
      res.writableLength = 0;
      emitter.emit('drain');
      if (res.ended && !res.writableFinished) {
        res.writableFinished = true;
        emitter.emit('close');
      }
    },
  });
  return res;
}

const ids = (text: string) => [...text.matchAll(/^id: (\d+)$/gm)].map((match) => Number(match[1]));
const tick = () => new Promise((resolve) => setImmediate(resolve));

function newService(repository: InMemoryConversationRepository, env: Record<string, string> = {}) {
  const config = validateConfig({ LOG_LEVEL: 'silent', SSE_HEARTBEAT_MS: '60000', ...env });
  const settings = settingsOf(config);
  const metrics = new MetricsService(settings.observability, 'server');
  const service = new EventStreamsService(
    repository,
    new AccessService(repository, settings.access),
    settings.events,
    metrics,
    new SystemClock(),
  );
  return { service, metrics, settings };
}

/** A new conversation in `repository`, and a way to post one message of `content` to it. */
async function conversationIn(repository: InMemoryConversationRepository, content: string) {
  const { id } = await repository.createConversation({
    id: randomUUID(),
    now: 1,
    maxConversations: 10,
  });
  const post = () =>
    repository.appendMessage(id, {
      id: randomUUID(),
      sender: 'agent',
      content,
      timestamp: 1,
      now: 1,
      maxMessages: 10_000,
    });
  return { id, post };
}

describe('EventStreamsService after a gap', () => {
  async function setup() {
    const repository = new DroppingRepository();
    const { service } = newService(repository);
    const { id, post } = await conversationIn(repository, 'hi');
    const res = fakeResponse();
    await service.stream(id, undefined, res as unknown as Response);
    return { repository, service, res, post };
  }

  it('catches up from the store, then goes on live, each seq once', async () => {
    const { repository, res, post } = await setup();
    await post();
    repository.connected = false;
    await post();
    await post();
    repository.reconnect();
    await post(); // told live while the stream reads what it missed: held, then written
    await tick();
    await post();
    await tick();
    expect(ids(res.text)).toEqual([1, 2, 3, 4, 5]);
    expect(res.ended).toBe(false);
    res.end();
  });

  it('catches up when a change skips a seq, before any notice of the gap', async () => {
    const { repository, res, post } = await setup();
    repository.connected = false;
    await post();
    repository.connected = true;
    await post();
    await tick();
    expect(ids(res.text)).toEqual([1, 2]);
    res.end();
  });

  it('ends the stream when it cannot catch up, so the client reconnects with its Last-Event-ID', async () => {
    const { repository, res, post } = await setup();
    await post();
    repository.connected = false;
    repository.readable = false;
    await post();
    repository.reconnect();
    await tick();
    expect(ids(res.text)).toEqual([1]);
    expect(res.ended).toBe(true);
  });
});

describe('EventStreamsService with a client that reads slowly or not at all', () => {
  const env = { MAX_MESSAGE_LENGTH: '100', SSE_MAX_BACKLOG_BYTES: '4096' };

  async function setup(messages: number) {
    const repository = new InMemoryConversationRepository();
    const { service, metrics, settings } = newService(repository, env);
    const { id, post } = await conversationIn(repository, 'm'.repeat(100));
    for (let i = 0; i < messages; i++) {
      await post();
    }
    const res = fakeResponse();
    const open = (lastEventId: number | undefined) =>
      service.stream(id, lastEventId, res as unknown as Response);
    const endedForBacklog = async () =>
      (await metrics.registry.getSingleMetric('chat_event_streams_backlog_ended_total')?.get())
        ?.values[0]?.value ?? 0;
    return { res, post, open, endedForBacklog, settings };
  }

  it('writes a replay frame by frame, each once the client took the one before, then what came meanwhile', async () => {
    const { res, post, open, endedForBacklog } = await setup(60);
    res.paused = true;
    await open(0);
    // 60 frames of ~300 bytes would pass the 4,096-byte limit if written at once.
    expect(ids(res.text)).toEqual([1]);
    await post(); // live, while the replay is being written: held until it is
    await post();
    expect(ids(res.text)).toEqual([1]);
    for (let round = 0; round < 100 && ids(res.text).length < 62; round++) {
      res.read();
      await tick();
    }
    expect(ids(res.text)).toEqual(Array.from({ length: 62 }, (_, i) => i + 1));
    expect(res.ended).toBe(false);
    expect(await endedForBacklog()).toBe(0);
    res.paused = false;
    res.read();
    await post();
    expect(ids(res.text).at(-1)).toBe(63);
    res.end();
  });

  it('ends a stream once what it has not sent passes SSE_MAX_BACKLOG_BYTES, and counts it', async () => {
    const { res, post, open, endedForBacklog, settings } = await setup(0);
    await open(undefined);
    res.paused = true;
    let posts = 0;
    while (!res.ended && posts < 100) {
      await post();
      posts++;
      if (!res.ended) {
        expect(res.writableLength).toBeLessThanOrEqual(settings.events.maxBacklogBytes);
      }
    }
    expect(res.ended).toBe(true);
    expect(posts).toBeGreaterThan(1);
    expect(await endedForBacklog()).toBe(1);
    // Ended cleanly: every frame whole, the last one the client can resume after.
    expect(res.text.endsWith('\n\n')).toBe(true);
    res.read();
    expect(res.writableFinished).toBe(true);
  });

  it('ends a stream whose client stops reading during a replay once the changes it holds pass the limit', async () => {
    const { res, post, open, endedForBacklog, settings } = await setup(30);
    res.paused = true;
    await open(0);
    let posts = 0;
    while (!res.ended && posts < 100) {
      await post();
      posts++;
    }
    expect(res.ended).toBe(true);
    expect(posts).toBeLessThan(100);
    expect(await endedForBacklog()).toBe(1);
    // Nothing held was written: the replay's frames went out in turn, one per drain.
    expect(ids(res.text)).toEqual([1]);
    expect(res.writableLength).toBeLessThanOrEqual(settings.events.maxBacklogBytes);
  });

  it("keeps an ended stream's place until what it held is taken or cut off", async () => {
    const repository = new InMemoryConversationRepository();
    const { service } = newService(repository, { ...env, MAX_EVENT_STREAMS: '1' });
    const { id, post } = await conversationIn(repository, 'm'.repeat(100));
    const first = fakeResponse();
    await service.stream(id, undefined, first as unknown as Response);
    first.paused = true;
    for (let posts = 0; !first.ended && posts < 100; posts++) {
      await post();
    }
    expect(first.ended).toBe(true);
    // Its unsent frames are still in this process: the place is not free yet.
    const second = fakeResponse();
    await expect(
      service.stream(id, undefined, second as unknown as Response),
    ).rejects.toMatchObject({ code: 'stream_capacity_exceeded' });
    first.read(); // the client takes them: the response closes
    await expect(service.stream(id, undefined, second as unknown as Response)).resolves.toBe(
      undefined,
    );
    second.end();
  });

  it('takes the limit as at least the largest frame one message can make', async () => {
    for (const maxMessageLength of [1, 100, 10_000]) {
      const longest = Number.MAX_SAFE_INTEGER;
      const json = messageJson({
        id: randomUUID(),
        conversationId: randomUUID(),
        sender: 'customer',
        content: '\u0001'.repeat(maxMessageLength),
        timestamp: longest,
        seq: longest,
        createdAt: longest,
      });
      const largest = frame({
        conversationId: randomUUID(),
        seq: longest,
        type: 'message.created',
        data: json,
      });
      expect(largestMessageFrameBytes(maxMessageLength)).toBe(Buffer.byteLength(largest));
    }
    const settings = (env: Record<string, string>) =>
      settingsOf(validateConfig({ LOG_LEVEL: 'silent', ...env })).events.maxBacklogBytes;
    expect(settings({})).toBe(4 * 1024 * 1024);
    expect(settings({ SSE_MAX_BACKLOG_BYTES: '1000' })).toBe(largestMessageFrameBytes(10_000));
    expect(settings({ MAX_MESSAGE_LENGTH: '1000000' })).toBe(largestMessageFrameBytes(1_000_000));
    expect(settings({ SSE_MAX_BACKLOG_BYTES: '65536', MAX_MESSAGE_LENGTH: '100' })).toBe(65536);
  });
});

describe('EventStreamsService places per client address', () => {
  it('counts IPv6 clients by subnet: two addresses of one /64 share MAX_EVENT_STREAMS_PER_CLIENT', async () => {
    const repository = new InMemoryConversationRepository();
    const { service } = newService(repository, { MAX_EVENT_STREAMS_PER_CLIENT: '1' });
    const { id } = await conversationIn(repository, 'hello');
    const from = (ip: string) => {
      const res = fakeResponse();
      res.req.ip = ip;
      return res;
    };
    const first = from('2001:db8:0:1::1');
    await service.stream(id, undefined, first as unknown as Response);

    await expect(
      service.stream(id, undefined, from('2001:db8:0:1::2') as unknown as Response),
    ).rejects.toMatchObject({ code: 'too_many_streams' });
    const otherSubnet = from('2001:db8:0:2::1');
    await expect(service.stream(id, undefined, otherSubnet as unknown as Response)).resolves.toBe(
      undefined,
    );

    first.end();
    otherSubnet.end();
  });
});
