import { BeforeApplicationShutdown, Injectable } from '@nestjs/common';
import type { Response } from 'express';
import { parseDecimal } from '../common/validation/decimal-integer';
import {
  AccessService,
  ANONYMOUS_TOKENS_PER_ADDRESS,
  anonymousTokensOf,
  callerOf,
  clientAddress,
  Principal,
} from '../access/access.service';
import { problem, ValidationFailedException } from '../common/errors/problem.catalogue';
import { EventSettings } from '../config/app.settings';
import { MetricsService } from '../observability/metrics.service';
import { Clock } from '../common/time/clock';
import {
  ChangeListener,
  ChangesAfter,
  ConversationChange,
  ConversationRepository,
  InboxEvent,
  TypingSignal,
} from './conversation.repository';
import { customerUpdateView } from './records/conversation-state';
import { toInboxConversationDto } from './dto/conversation.mapper';

/**
 * Reads Last-Event-ID (header, or the lastEventId query parameter): a seq in plain decimal;
 * undefined when absent or empty (as EventSource means it). A repeated parameter is refused.
 */
export function parseLastEventId(raw: unknown): number | undefined {
  if (raw === undefined || raw === '') {
    return undefined;
  }
  const seq = parseDecimal(raw);
  if (seq === undefined) {
    throw new ValidationFailedException([
      { field: 'lastEventId', message: 'Last-Event-ID must be a seq: an integer, 0 or more' },
    ]);
  }
  return seq;
}

/** What a frame adds to its data, at most: its id, its event name and the line ends. */
const FRAME_ENVELOPE_BYTES = 64;

export function frame(change: ConversationChange): string {
  const id = change.type === 'conversation.evicted' ? '' : `id: ${change.seq}\n`;
  return `${id}event: ${change.type}\ndata: ${change.data}\n\n`;
}

/**
 * A change as a customer token may see it: a conversation.updated tells only the seq, status
 * and snooze (customerUpdateView); every other change as it is.
 */
function customerView(change: ConversationChange): ConversationChange {
  return change.type === 'conversation.updated'
    ? { ...change, data: customerUpdateView(change.data) }
    : change;
}

/** An inbox feed event as its frame (no id: the feed has no replay). */
function inboxFrame(event: InboxEvent, now: number): string {
  const data =
    event.type === 'conversation.evicted'
      ? JSON.stringify({ conversationId: event.conversationId })
      : JSON.stringify(toInboxConversationDto(event.row, now));
  return `event: ${event.type}\ndata: ${data}\n\n`;
}

const RESET_FRAME = 'event: reset\ndata: {}\n\n';

/**
 * Server-Sent Events for one conversation: replays what a reconnecting client missed (from
 * the store's replay buffer), then forwards every change live, each exactly once and in seq
 * order, with a comment line every SSE_HEARTBEAT_MS. When the store tells of a gap (its
 * connection dropped), the stream catches up from the replay buffer before it goes on, or
 * ends if the store cannot answer: it never goes on past a gap.
 *
 * What a stream has not sent stays in this process's heap, so a client that stops reading
 * must not grow it without a bound: what is read from the store is written frame by frame,
 * each after the client has taken the one before (`drain`), and a stream whose unsent bytes
 * (the response's buffer plus the changes it holds) pass SSE_MAX_BACKLOG_BYTES is ended.
 */
@Injectable()
export class EventStreamsService implements BeforeApplicationShutdown {
  private readonly open = new Set<Response>();
  /** Streams this process serves, and how many each client holds (see takePlace). */
  private places = 0;
  private readonly placesByClient = new Map<string, number>();

  constructor(
    private readonly repository: ConversationRepository,
    private readonly access: AccessService,
    private readonly settings: EventSettings,
    private readonly metrics: MetricsService,
    private readonly clock: Clock,
  ) {}

  /**
   * Takes one of the process's MAX_EVENT_STREAMS places and one of the client's
   * MAX_EVENT_STREAMS_PER_CLIENT (its API key, customer token or address), and for an
   * anonymous customer token one of its address's ANONYMOUS_TOKENS_PER_ADDRESS times as many
   * (anonymousTokensOf), or refuses with 503 or 429; returns the way to give them back, which
   * the stream calls once it ends, however it ends (a client that vanished is found when a
   * write to it fails).
   */
  private takePlace(principal: Principal, ip: string | undefined): () => void {
    const client = callerOf(principal, ip);
    const shared = anonymousTokensOf(principal, ip);
    const perClient = this.settings.maxStreamsPerClient;
    const held = this.placesByClient.get(client) ?? 0;
    if (held >= perClient) {
      throw problem('too_many_streams', { held, limit: 'MAX_EVENT_STREAMS_PER_CLIENT' });
    }
    const sharedHeld = shared === null ? 0 : (this.placesByClient.get(shared) ?? 0);
    if (sharedHeld >= perClient * ANONYMOUS_TOKENS_PER_ADDRESS) {
      throw problem('too_many_streams', {
        held: sharedHeld,
        limit: `${ANONYMOUS_TOKENS_PER_ADDRESS} × MAX_EVENT_STREAMS_PER_CLIENT for the anonymous customer tokens used from one address`,
      });
    }
    if (this.places >= this.settings.maxStreams) {
      throw problem('stream_capacity_exceeded');
    }
    this.places++;
    this.placesByClient.set(client, held + 1);
    if (shared !== null) {
      this.placesByClient.set(shared, sharedHeld + 1);
    }
    let given = false;
    return () => {
      if (given) {
        return;
      }
      given = true;
      this.places--;
      this.giveBack(client);
      if (shared !== null) {
        this.giveBack(shared);
      }
    };
  }

  private giveBack(client: string): void {
    const left = (this.placesByClient.get(client) ?? 1) - 1;
    if (left > 0) {
      this.placesByClient.set(client, left);
    } else {
      this.placesByClient.delete(client);
    }
  }

  /**
   * Answers the request with the stream, or throws a problem (unknown conversation, store
   * unavailable) before anything is written.
   */
  async stream(
    conversationId: string,
    lastEventId: number | undefined,
    res: Response,
  ): Promise<void> {
    const principal = await this.access.principal(res.req);
    const release = this.takePlace(principal, clientAddress(res.req));
    const stream = new LiveStream(
      this.repository,
      conversationId,
      res,
      this.settings,
      () => this.metrics.countStreamEndedForBacklog(),
      principal.kind === 'customer' ? customerView : (change) => change,
    );
    // Watch first, and read where the stream starts only once the watch is in effect:
    // a change made in between is then told, and held until what was read is written.
    const watch = this.repository.watch(conversationId, stream);
    const giveUp = () => {
      watch.stop();
      release();
    };
    let start;
    try {
      await watch.ready;
      start = await this.repository.changesAfter(
        conversationId,
        lastEventId ?? Number.MAX_SAFE_INTEGER,
      );
    } catch (error) {
      giveUp();
      throw error;
    }
    if (!start) {
      giveUp();
      throw problem('conversation_not_found');
    }
    if (res.destroyed) {
      giveUp(); // the client left while the store answered
      return;
    }

    res.status(200);
    res.setHeader('Content-Type', 'text/event-stream; charset=utf-8');
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('Connection', 'keep-alive');
    res.setHeader('X-Accel-Buffering', 'no'); // nginx: pass events through at once
    res.flushHeaders();
    this.open.add(res);
    const heartbeat = setInterval(() => stream.heartbeat(), this.settings.heartbeatMs);
    stream.onEnd = () => {
      watch.stop();
      clearInterval(heartbeat);
      this.open.delete(res);
    };
    // The response closes when the client leaves, or once a stream that was ended has been
    // taken or cut off: only then are its places given back, since until then what it had not
    // sent is still held in this process.
    res.on('close', () => {
      stream.end();
      release();
    });

    stream.send(': connected\n\n');
    stream.begin(lastEventId ?? start.lastSeq, start);
  }

  /**
   * The inbox feed (GET /api/conversations/events): `reset` first, then an event for every
   * conversation created, changed or evicted, with no id and no replay. After a gap (the
   * store's connection dropped) or once the client falls behind by SSE_MAX_BACKLOG_BYTES,
   * the events meanwhile are dropped and `reset` is sent when it has caught up: the client
   * lists again with activeSince. It takes a stream place like any stream.
   */
  async streamInbox(res: Response): Promise<void> {
    const release = this.takePlace(await this.access.principal(res.req), clientAddress(res.req));
    let behind = false;
    const send = (text: string) => {
      if (behind || res.destroyed) {
        return;
      }
      res.write(text);
      if (res.writableLength > this.settings.maxBacklogBytes) {
        behind = true;
        res.once('drain', () => {
          behind = false;
          send(RESET_FRAME);
        });
      }
    };
    const watch = this.repository.watchInbox({
      event: (event) => send(inboxFrame(event, this.clock.now())),
      gap: () => send(RESET_FRAME),
    });
    try {
      await watch.ready;
    } catch (error) {
      watch.stop();
      release();
      throw error;
    }
    if (res.destroyed) {
      watch.stop();
      release();
      return;
    }
    res.status(200);
    res.setHeader('Content-Type', 'text/event-stream; charset=utf-8');
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('Connection', 'keep-alive');
    res.setHeader('X-Accel-Buffering', 'no');
    res.flushHeaders();
    this.open.add(res);
    const heartbeat = setInterval(() => {
      if (res.writableLength === 0) {
        res.write(': heartbeat\n\n');
      }
    }, this.settings.heartbeatMs);
    res.on('close', () => {
      watch.stop();
      clearInterval(heartbeat);
      this.open.delete(res);
      release();
    });
    res.write(': connected\n\n');
    send(RESET_FRAME);
  }

  /**
   * The app is closing: ends every open stream, which would never fall idle, before the server
   * drains (TimedExpressAdapter.close); clients reconnect elsewhere.
   */
  beforeApplicationShutdown(): void {
    for (const res of [...this.open]) {
      res.end();
    }
    this.open.clear();
  }
}

/**
 * One open stream's state. Changes told while it reads the store (at the start, and to catch
 * up after a gap) are held, then written after what was read; each seq is written once. As
 * every seq is one change, a change that skips one is a gap too (one told live just before
 * the store's notice, say): the stream holds it and catches up.
 *
 * What is read is written one frame at a time, waiting for `drain` when the response's
 * buffer is full; live changes told meanwhile are held (and counted) and written after.
 */
class LiveStream implements ChangeListener {
  /** The last seq the client has (sent, or its Last-Event-ID). */
  private lastSent = 0;
  /** Changes told while the store is being read or what it read is written; null while live. */
  private held: ConversationChange[] | null = [];
  /** The bytes of the held changes' frames, at most. */
  private heldBytes = 0;
  /** Resolves the wait for `drain` (false: the stream ended meanwhile). */
  private drainWaiter: ((drained: boolean) => void) | null = null;
  /** A gap was told while the store was being read: read again after. */
  private gapAgain = false;
  private ended = false;
  /** The response has begun: typing signals may be written (they are never held). */
  private started = false;
  /** Releases the watch, the heartbeat and the entry in the open set. */
  onEnd: () => void = () => undefined;

  constructor(
    private readonly repository: ConversationRepository,
    private readonly conversationId: string,
    private readonly res: Response,
    private readonly settings: Pick<EventSettings, 'maxBacklogBytes' | 'heartbeatMs'>,
    private readonly endedForBacklog: () => void,
    /** What the client may see of a change (a customer token's view). */
    private readonly view: (change: ConversationChange) => ConversationChange = (c) => c,
  ) {}

  change(change: ConversationChange): void {
    if (this.held) {
      this.hold([change]);
    } else if (!this.forward(change)) {
      this.hold([change]);
      void this.catchUp();
    }
  }

  /** Written at once, even while changes are held: it has no seq, and no place among them. */
  typing(signal: TypingSignal): void {
    if (this.started && !this.ended) {
      const data = JSON.stringify({
        sender: signal.sender,
        typing: signal.typing,
        expiresAt: signal.expiresAt,
      });
      this.send(`event: typing\ndata: ${data}\n\n`);
    }
  }

  /** A comment line, unless frames are waiting for the client: the stream is not idle then. */
  heartbeat(): void {
    if (!this.ended && this.res.writableLength === 0) {
      this.send(': heartbeat\n\n');
    }
  }

  /**
   * Writes `text`, then ends the stream if what it has not sent passes the limit. False when
   * the client should take what was written (`drain`) before more is written.
   */
  send(text: string): boolean {
    const flowing = this.res.write(text);
    this.checkBacklog();
    return flowing && !this.ended;
  }

  gap(): void {
    if (this.held) {
      this.gapAgain = true; // being read already, perhaps from before the gap
    } else {
      void this.catchUp();
    }
  }

  /** Starts the stream after `lastSent` with what the start read (as catchUp does). */
  begin(lastSent: number, read: ChangesAfter): void {
    this.lastSent = lastSent;
    this.started = true;
    void this.write(read);
  }

  end(): void {
    if (!this.ended) {
      this.ended = true;
      this.held = null;
      this.heldBytes = 0;
      this.drainWaiter?.(false);
      this.onEnd();
      this.res.end();
    }
  }

  /** Holds changes (in order) until what is being read or written is; they count as unsent. */
  private hold(changes: ConversationChange[]): void {
    this.held ??= [];
    for (const change of changes) {
      this.held.push(change);
      this.heldBytes += Buffer.byteLength(change.data) + FRAME_ENVELOPE_BYTES;
    }
    this.checkBacklog();
  }

  /**
   * Ends the stream, cleanly, once what it has not sent passes SSE_MAX_BACKLOG_BYTES: the
   * client reconnects with its Last-Event-ID and catches up from the replay buffer. What its
   * response still holds is given a heartbeat's time to be read, then the connection is cut.
   */
  private checkBacklog(): void {
    // Before it starts, its start is being read (within STORE_TIMEOUT_MS) and nothing is sent.
    if (
      !this.started ||
      this.ended ||
      this.res.writableLength + this.heldBytes <= this.settings.maxBacklogBytes
    ) {
      return;
    }
    this.endedForBacklog();
    this.end();
    if (!this.res.writableFinished) {
      const cut = setTimeout(() => this.res.destroy(), this.settings.heartbeatMs);
      cut.unref();
      this.res.once('finish', () => clearTimeout(cut));
      this.res.once('close', () => clearTimeout(cut));
    }
  }

  /** Writes `text`, then waits for the client to take it if it is behind; false: ended. */
  private async sendInTurn(text: string): Promise<boolean> {
    return this.send(text) || (!this.ended && (await this.drained()));
  }

  /** Resolves once the client has taken what was written: true, or false if the stream ended. */
  private drained(): Promise<boolean> {
    return new Promise((resolve) => {
      const done = (drained: boolean) => {
        this.drainWaiter = null;
        this.res.off('drain', onDrain);
        resolve(drained && !this.ended);
      };
      const onDrain = () => done(true);
      this.drainWaiter = done;
      this.res.once('drain', onDrain);
    });
  }

  /** Reads what the client missed from the store's replay buffer, and writes it. */
  private async catchUp(): Promise<void> {
    this.held ??= [];
    this.gapAgain = false;
    let read: ChangesAfter | null;
    try {
      read = await this.repository.changesAfter(this.conversationId, this.lastSent);
    } catch {
      this.end(); // the client reconnects with Last-Event-ID, and is told what it missed
      return;
    }
    if (this.ended) {
      return;
    }
    if (!read) {
      // Gone meanwhile, and its eviction was not told (it fell in the gap).
      this.forward({
        conversationId: this.conversationId,
        seq: 0,
        type: 'conversation.evicted',
        data: '{}',
      });
      return;
    }
    await this.write(read);
  }

  /**
   * Writes what was read after `lastSent`, or `reset` when the buffer no longer reaches back
   * that far (or the client's id is not one of this conversation's): the client reloads the
   * history. Then the changes held meanwhile (already counted as unsent, so written at
   * once), and then it is live. Each frame of what was read waits for the client to take the
   * one before.
   */
  private async write(read: ChangesAfter): Promise<void> {
    if (this.ended) {
      return;
    }
    if (!read.complete || this.lastSent > read.lastSeq) {
      this.lastSent = read.lastSeq;
      const reset = `id: ${read.lastSeq}\nevent: reset\ndata: ${JSON.stringify({ lastEventId: read.lastSeq })}\n\n`;
      if (!(await this.sendInTurn(reset))) {
        return;
      }
    }
    for (const change of read.changes) {
      if (change.seq > this.lastSent) {
        this.lastSent = change.seq;
        if (!(await this.sendInTurn(frame(this.view(change))))) {
          return;
        }
      }
    }
    const held = this.held ?? [];
    this.held = null;
    this.heldBytes = 0;
    for (let i = 0; i < held.length; i++) {
      if (!this.forward(held[i])) {
        this.hold(held.slice(i));
        void this.catchUp();
        return;
      }
    }
    if (this.gapAgain && !this.ended) {
      void this.catchUp();
    }
  }

  /** Writes a change unless the client has it; false, writing nothing, when it skips a seq. */
  private forward(change: ConversationChange): boolean {
    if (this.ended) {
      return true;
    }
    if (change.type === 'conversation.evicted') {
      this.res.write(frame(change));
      this.end();
      return true;
    }
    if (change.seq > this.lastSent + 1) {
      return false;
    }
    if (change.seq > this.lastSent) {
      this.lastSent = change.seq;
      this.send(frame(this.view(change)));
    }
    return true;
  }
}
