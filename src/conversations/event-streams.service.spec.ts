import { EventEmitter } from 'node:events';
import { randomUUID } from 'node:crypto';
import type { Response } from 'express';
import { AccessService } from '../access/access.service';
import { validateConfig } from '../config/app.config';
import { settingsOf } from '../config/app.settings';
import { StoreError } from './conversation.errors';
import { ChangeListener, ChangesAfter, ConversationChange, Watch } from './conversation.repository';
import { EventStreamsService } from './event-streams.service';
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

/** Just enough of an express Response for a stream: what is written, and whether it ended. */
function fakeResponse() {
  const emitter = new EventEmitter();
  const res = Object.assign(emitter, {
    destroyed: false,
    ended: false,
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
      return true;
    },
    end: () => {
      res.ended = true;
      emitter.emit('close');
    },
  });
  return res;
}

const ids = (text: string) => [...text.matchAll(/^id: (\d+)$/gm)].map((match) => Number(match[1]));
const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('EventStreamsService after a gap', () => {
  async function setup() {
    const repository = new DroppingRepository();
    const config = validateConfig({ LOG_LEVEL: 'silent', SSE_HEARTBEAT_MS: '60000' });
    const service = new EventStreamsService(
      repository,
      new AccessService(repository, settingsOf(config).access),
      settingsOf(config).events,
    );
    const { id } = await repository.createConversation({
      id: randomUUID(),
      now: 1,
      maxConversations: 10,
    });
    const post = () =>
      repository.appendMessage(id, {
        id: randomUUID(),
        sender: 'agent',
        content: 'hi',
        timestamp: 1,
        now: 1,
        maxMessages: 100,
      });
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
