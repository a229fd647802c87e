import { TappedChange } from '../../change-outbox';
import { conversationSummaryJson } from '../../dto/conversation.mapper';
import { REDIS_HEADER_FIELDS, redisHeader } from '../../records/conversation.codec';
import { createdAtOfJson, MessageJson } from '../../records/message.codec';
import { decodeStreamEntry } from './change-codec';
import { RedisStoreConnection } from './redis-connection';

/**
 * The webhooks' queued mark of a conversation (fields w, wd, wt of its hash: see
 * redis-keys.ts and queued-1.lua): what tells the changes applied to it from those that have
 * an outbox entry. The request path raises it after its outbox write (without waiting); the
 * reconcile pass and the sweeper read it to queue what a process that died in between left
 * unqueued.
 */
export interface QueuedMark {
  life: number;
  /** The conversation's last seq. */
  lastSeq: number;
  /** Every change up to it is queued (-1: not even the creation); null: not tracked. */
  mark: number | null;
  /** Seqs queued above mark + 1. */
  done: Set<number>;
  /** When the mark last moved (ms). */
  movedAt: number;
  lastActivityAt: number;
}

/** The mark's fields, after REDIS_HEADER_FIELDS. */
const MARK_FIELDS = ['w', 'wd', 'wt'];

/** What a conversation has applied but not queued. */
export interface Unqueued {
  life: number;
  lastSeq: number;
  /** To queue (creation first, then ascending seq). */
  changes: TappedChange[];
  /** Seqs applied, not queued and no longer in the replay buffer. */
  lost: { from: number; to: number; count: number } | null;
}

/** The mark of a conversation and its header's values; null when it is gone. */
export async function readQueuedMark(
  connection: RedisStoreConnection,
  id: string,
): Promise<{ mark: QueuedMark; values: (string | null)[] } | null> {
  const [conv] = connection.keys.conversation(id);
  const values = await connection.run(() =>
    connection.commands.hmget(conv, ...REDIS_HEADER_FIELDS, ...MARK_FIELDS),
  );
  const n = REDIS_HEADER_FIELDS.length;
  const [w, wd, wt] = values.slice(n);
  const header = redisHeader(id, values.slice(0, n));
  if (!header) {
    return null;
  }
  return {
    values,
    mark: {
      life: header.life,
      lastSeq: header.version,
      mark: w === null ? null : Number(w),
      done: new Set(wd ? wd.split(',').map(Number) : []),
      movedAt: Number(wt ?? 0),
      lastActivityAt: header.lastActivityAt,
    },
  };
}

/** Whether a mark leaves changes unqueued. */
export function hasUnqueued(mark: QueuedMark): boolean {
  return mark.mark !== null && mark.mark < mark.lastSeq;
}

/**
 * The changes of a conversation applied but not queued, rebuilt from its record and its
 * replay buffer (the events stream): conversation.created when the mark is -1 (its summary
 * as the record stands now), then every seq above the mark not queued since. A change that
 * the buffer no longer holds is counted in `lost`. null when the conversation is gone or
 * untracked; no changes when nothing is missing.
 *
 * A rebuilt change's `at` is its message's createdAt for message.created (what the request
 * path used), else `now`: when the original entry was queued too (the pass raced a slow
 * request), the downstream queue keeps the first body it got under that id.
 */
export async function unqueuedChanges(
  connection: RedisStoreConnection,
  id: string,
  now: number,
  read?: { mark: QueuedMark; values: (string | null)[] } | null,
): Promise<Unqueued | null> {
  const found = read === undefined ? await readQueuedMark(connection, id) : read;
  if (!found || found.mark.mark === null) {
    return null;
  }
  const { mark, values } = found;
  const { life, lastSeq } = mark;
  const from = mark.mark as number;
  const changes: TappedChange[] = [];
  if (from < 0) {
    const header = redisHeader(id, values.slice(0, REDIS_HEADER_FIELDS.length));
    if (header) {
      changes.push({
        conversationId: id,
        life,
        seq: 0,
        type: 'conversation.created',
        data: conversationSummaryJson(header, header.createdAt),
        at: header.createdAt,
      });
    }
  }
  const after = Math.max(from, 0);
  if (after >= lastSeq) {
    return { life, lastSeq, changes, lost: null };
  }
  const events = connection.keys.conversation(id)[3];
  const entries = (await connection.run(() =>
    connection.commands.xrange(events, `${after + 1}-0`, '+'),
  )) as [string, string[]][];
  const kept = entries.map((entry) => decodeStreamEntry(id, entry));
  const first = kept.length > 0 ? kept[0].seq : lastSeq + 1;
  let lostCount = 0;
  for (let seq = after + 1; seq < Math.min(first, lastSeq + 1); seq++) {
    if (!mark.done.has(seq)) {
      lostCount++;
    }
  }
  for (const change of kept) {
    if (mark.done.has(change.seq) || change.type === 'conversation.evicted') {
      continue;
    }
    changes.push({
      conversationId: id,
      life,
      seq: change.seq,
      type: change.type as TappedChange['type'],
      data: change.data,
      at: change.type === 'message.created' ? createdAtOfJson(change.data as MessageJson) : now,
    });
  }
  return {
    life,
    lastSeq,
    changes,
    lost:
      lostCount > 0
        ? { from: after + 1, to: Math.min(first, lastSeq + 1) - 1, count: lostCount }
        : null,
  };
}

/**
 * Raises the mark over `seqs` (and awaits it): queued-1.lua. `seqs` may include lost ones,
 * so that a loss is told once and never blocks the mark.
 */
export async function markQueued(
  connection: RedisStoreConnection,
  id: string,
  life: number,
  seqs: number[],
  now: number,
): Promise<void> {
  if (seqs.length === 0) {
    return;
  }
  const [conv] = connection.keys.conversation(id);
  await connection.run(() => connection.commands.chatQueued(conv, life, now, ...seqs));
}
