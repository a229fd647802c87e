import { Inject, Injectable } from '@nestjs/common';
import type { Response } from 'express';
import { parseDecimal } from '../common/decimal-integer';
import { ValidationFailedException } from '../common/problem';
import { AppConfig, appConfig } from '../config/app.config';
import { ConversationChange, ConversationRepository } from './conversation.repository';
import { conversationNotFound, toProblem } from './conversations.service';

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

function frame(change: ConversationChange): string {
  const id = change.type === 'conversation.evicted' ? '' : `id: ${change.seq}\n`;
  return `${id}event: ${change.type}\ndata: ${change.data}\n\n`;
}

/**
 * Server-Sent Events for one conversation: replays what a reconnecting client missed (from
 * the store's replay buffer), then forwards every change live, each exactly once and in seq
 * order, with a comment line every SSE_HEARTBEAT_MS.
 */
@Injectable()
export class EventStreamsService {
  private readonly open = new Set<Response>();

  constructor(
    private readonly repository: ConversationRepository,
    @Inject(appConfig.KEY) private readonly config: AppConfig,
  ) {}

  /**
   * Answers the request with the stream, or throws a problem (unknown conversation, store
   * unavailable) before anything is written.
   */
  async stream(
    conversationId: string,
    lastEventId: number | undefined,
    res: Response,
  ): Promise<void> {
    // Watch first, then read where the stream starts: nothing can fall in between.
    const early: ConversationChange[] = [];
    let deliver: (change: ConversationChange) => void = (change) => early.push(change);
    const unwatch = this.repository.watch(conversationId, (change) => deliver(change));
    let start;
    try {
      start = await this.repository.changesAfter(
        conversationId,
        lastEventId ?? Number.MAX_SAFE_INTEGER,
      );
    } catch (error) {
      unwatch();
      throw toProblem(error);
    }
    if (!start) {
      unwatch();
      throw conversationNotFound();
    }
    if (res.destroyed) {
      unwatch(); // the client left while the store answered
      return;
    }

    res.status(200);
    res.setHeader('Content-Type', 'text/event-stream; charset=utf-8');
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('Connection', 'keep-alive');
    res.setHeader('X-Accel-Buffering', 'no'); // nginx: pass events through at once
    res.flushHeaders();
    this.open.add(res);

    let lastSent = lastEventId ?? start.lastSeq;
    let ended = false;
    let heartbeat: NodeJS.Timeout | undefined;
    const end = () => {
      if (!ended) {
        ended = true;
        unwatch();
        clearInterval(heartbeat);
        this.open.delete(res);
        res.end();
      }
    };
    const send = (change: ConversationChange) => {
      if (ended) {
        return;
      }
      if (change.type === 'conversation.evicted') {
        res.write(frame(change));
        end();
        return;
      }
      if (change.seq > lastSent) {
        lastSent = change.seq;
        res.write(frame(change));
      }
    };

    res.write(': connected\n\n');
    if (lastEventId !== undefined && (!start.complete || lastEventId > start.lastSeq)) {
      // The buffer no longer reaches back that far (or the id is not one of this
      // conversation's): the client reloads the history.
      res.write(
        `id: ${start.lastSeq}\nevent: reset\ndata: ${JSON.stringify({ lastEventId: start.lastSeq })}\n\n`,
      );
      lastSent = start.lastSeq;
    }
    start.changes.forEach(send);
    early.forEach(send);
    deliver = send;
    if (!ended) {
      heartbeat = setInterval(() => res.write(': heartbeat\n\n'), this.config.SSE_HEARTBEAT_MS);
      // The response closes when the client leaves (or when end() ends it).
      res.on('close', end);
    }
  }

  /** Ends every open stream (the server is stopping); clients reconnect elsewhere. */
  closeAll(): void {
    for (const res of [...this.open]) {
      res.end();
    }
    this.open.clear();
  }
}
