import { matchesInboxQuery } from '../inbox-query';
import {
  ConversationHeader,
  redisHeader,
  InboxRow,
  lastMessageOf,
  REDIS_HEADER_FIELDS,
} from '../../records/conversation.codec';
import { ConversationStatus, STATUSES } from '../../records/conversation-state';
import {
  INBOX_EXAMINED_PER_ROW,
  InboxCounts,
  InboxPage,
  InboxPosition,
  InboxQuery,
} from '../../conversation.repository';
import { RedisStoreConnection } from './redis-connection';
import { InboxIndexName } from './redis-keys';

/** Digits of the seq that prefixes each member of a conversation's message sets. */
const SEQ_DIGITS = 10;

/** What the inbox indexes and counts know of a conversation's state. */
export interface IndexedState {
  status: ConversationStatus;
  assignee: string;
  snoozedUntil: number;
}

/** What a change tells the indexes, as its second step (see RedisInboxIndex). */
export interface IndexedChange {
  lastActivityAt: number;
  /** The assignee after the change ('' unassigned): its own index follows the activity. */
  assignee: string;
  /** Absent: unchanged by the change. */
  waitingSince?: number;
  /** The state before and after, when the change moved it (absent `from`: a create). */
  from?: IndexedState;
  to?: IndexedState;
}

/** A record read for a row: its header, and its last standing message's member. */
interface Candidate {
  id: string;
  key: number;
}

/** The count fields of `{ix:counts}`: one per status, assigned and unassigned. */
const ASSIGNED = 'assigned';
const UNASSIGNED = 'unassigned';
/** An assignee's count of one status. */
const byAssignee = (assignee: string, status: string) => `a:${assignee}:${status}`;

/**
 * The inbox on Redis: indexes and counts kept as a second step after each change, since a
 * conversation's script may touch only its own slot and the indexes are bucketed under tags
 * of their own (RedisKeys.inboxIndex). The record is the truth: a list re-reads each
 * candidate's record and drops (and repairs) entries that no longer match it, and the
 * sweeper's walk (reindex) puts right what a process that died between the steps left.
 *
 *   act     score lastActivityAt, every conversation
 *   wait    score waitingSince, only those waiting for an agent
 *   snooze  score snoozedUntil, only the snoozed: the due index wakeSnoozed reads
 *   as:<id> score lastActivityAt, one assignee's conversations (one key per assignee, not
 *           bucketed: an assignee holds few)
 *   counts  per status, assigned, unassigned, and per assignee and status (`a:<id>:<status>`)
 */
export class RedisInboxIndex {
  constructor(private readonly connection: RedisStoreConnection) {}

  /**
   * The second step of a change: its indexes and counts. Failures are left to the repairs
   * (the record is written and stands); the caller's answer does not wait on them failing.
   */
  async changed(id: string, change: IndexedChange): Promise<void> {
    const { commands, keys } = this.connection;
    const writes: Promise<unknown>[] = [
      commands.zadd(keys.inboxIndex('act', id), 'GT', change.lastActivityAt, id),
    ];
    if (change.assignee) {
      writes.push(
        commands.zadd(keys.inboxAssignee(change.assignee), 'GT', change.lastActivityAt, id),
      );
    }
    if (change.from?.assignee && change.from.assignee !== change.assignee) {
      writes.push(commands.zrem(keys.inboxAssignee(change.from.assignee), id));
    }
    if (change.waitingSince !== undefined) {
      const wait = keys.inboxIndex('wait', id);
      writes.push(
        change.waitingSince > 0
          ? commands.zadd(wait, change.waitingSince, id)
          : commands.zrem(wait, id),
      );
    }
    const { from, to } = change;
    if (to && (!from || from.status !== to.status || from.snoozedUntil !== to.snoozedUntil)) {
      const snooze = keys.inboxIndex('snooze', id);
      if (to.status === 'snoozed') {
        writes.push(commands.zadd(snooze, to.snoozedUntil, id));
      } else if (from?.status === 'snoozed') {
        writes.push(commands.zrem(snooze, id));
      }
    }
    if (to && (!from || from.status !== to.status || from.assignee !== to.assignee)) {
      writes.push(...this.count(from, to));
    }
    await Promise.all(writes).catch(() => undefined);
  }

  /** The second step of an eviction: out of every index and count. */
  async evicted(id: string, state: IndexedState | null): Promise<void> {
    const { commands, keys } = this.connection;
    await Promise.all([
      commands.zrem(keys.inboxIndex('act', id), id),
      commands.zrem(keys.inboxIndex('wait', id), id),
      commands.zrem(keys.inboxIndex('snooze', id), id),
      state?.assignee ? commands.zrem(keys.inboxAssignee(state.assignee), id) : null,
      ...this.count(state ?? undefined, undefined),
    ]).catch(() => undefined);
  }

  /** The counts' moves from one state to another (either absent: a create, an eviction). */
  private count(from: IndexedState | undefined, to: IndexedState | undefined): Promise<unknown>[] {
    const moves: (string | number)[] = [];
    for (const [state, by] of [
      [from, -1],
      [to, 1],
    ] as const) {
      if (state) {
        moves.push(state.status, by, state.assignee ? ASSIGNED : UNASSIGNED, by);
        if (state.assignee) {
          moves.push(byAssignee(state.assignee, state.status), by);
        }
      }
    }
    const { commands, keys } = this.connection;
    return moves.length > 0 ? [commands.chatCountInbox(keys.inboxCounts, ...moves)] : [];
  }

  /**
   * How many of each status, assigned and unassigned; of one assignee: its conversations'
   * statuses, `assigned` its total, `unassigned` the store's. Counted by the second steps,
   * put right by each reindex (see docs/redis.md for the drift between). A due snooze counts
   * as snoozed until its wake is written (within a second).
   */
  async counts(assignee?: string): Promise<InboxCounts> {
    const { commands, keys } = this.connection;
    const fields = assignee
      ? [...STATUSES.map((status) => byAssignee(assignee, status)), UNASSIGNED]
      : [...STATUSES, ASSIGNED, UNASSIGNED];
    const values = (
      await this.connection.run(() => commands.hmget(keys.inboxCounts, ...fields))
    ).map((value) => Math.max(0, Number(value ?? 0)));
    const [open, pending, snoozed, resolved] = values;
    return {
      open,
      pending,
      snoozed,
      resolved,
      assigned: assignee ? open + pending + snoozed + resolved : values[4],
      unassigned: assignee ? values[4] : values[5],
    };
  }

  /**
   * A page of the inbox: the query's index buckets merged in key order from its position,
   * each candidate's record re-read (one pipeline per round), at most
   * INBOX_EXAMINED_PER_ROW × limit candidates examined.
   */
  async list(query: InboxQuery): Promise<InboxPage> {
    const desc = query.sort === '-lastActivityAt';
    const index = this.indexFor(query);
    const budget = INBOX_EXAMINED_PER_ROW * query.limit;
    const batch = Math.max(8, Math.ceil(query.limit / 4));
    const cursors = index.buckets.map(
      (bucket) => new BucketCursor(bucket, desc, query.after, batch),
    );
    const beyond = (key: number) =>
      desc ? query.activeSince !== undefined && key < query.activeSince : key >= query.t0;
    const rows: InboxRow[] = [];
    let examined = 0;
    let last: InboxPosition | undefined;
    let ended = false;
    while (rows.length < query.limit && examined < budget) {
      // As many candidates as rows are missing, doubling while few match.
      const want = Math.min(Math.max(query.limit - rows.length, examined), budget - examined);
      const candidates: Candidate[] = [];
      while (candidates.length < want) {
        const empty = cursors.filter((cursor) => cursor.wantsFill);
        if (empty.length > 0) {
          await this.connection.run(() =>
            Promise.all(empty.map((cursor) => cursor.fill(this.connection.commands))),
          );
        }
        const next = nextOf(cursors, desc);
        if (!next || beyond(next.key)) {
          ended = true;
          break;
        }
        next.cursor.take();
        candidates.push({ id: next.id, key: next.key });
      }
      if (candidates.length === 0) {
        break;
      }
      examined += candidates.length;
      last = candidates[candidates.length - 1];
      rows.push(...(await this.rowsOf(candidates, index, query)));
      if (ended) {
        break;
      }
    }
    if (rows.length > query.limit) {
      // A round read past the page: it ends at its last row, where the next one starts.
      rows.length = query.limit;
      const row = rows[rows.length - 1];
      return {
        rows,
        next: { key: desc ? row.lastActivityAt : row.counters.waitingSince, id: row.id },
      };
    }
    return {
      rows,
      next: ended || !last ? null : { key: last.key, id: last.id },
    };
  }

  /**
   * The index a query walks: one assignee's own (by activity) when it asks for one, else the
   * activity index or the waiting queue, as it sorts.
   */
  private indexFor(query: InboxQuery): ListIndex {
    const { keys } = this.connection;
    const { assignee } = query;
    if (query.sort === '-lastActivityAt' && assignee) {
      const key = keys.inboxAssignee(assignee);
      return {
        buckets: [key],
        keyOf: () => key,
        scoreOf: (header) => (header.state.assignee === assignee ? header.lastActivityAt : 0),
      };
    }
    const name: InboxIndexName = query.sort === '-lastActivityAt' ? 'act' : 'wait';
    return {
      buckets: keys.inboxBuckets(name),
      keyOf: (id) => keys.inboxIndex(name, id),
      scoreOf: (header) => (name === 'act' ? header.lastActivityAt : header.counters.waitingSince),
    };
  }

  /** The rows among the candidates that still match; entries behind their record repaired. */
  private async rowsOf(
    candidates: Candidate[],
    index: ListIndex,
    query: InboxQuery,
  ): Promise<InboxRow[]> {
    const { commands, keys } = this.connection;
    // The records first; the last messages only of the rows that match (often a few of the
    // candidates a filtered page examines).
    const records = await this.connection.run(() =>
      Promise.all(
        candidates.map(({ id }) =>
          commands.hmget(keys.conversation(id)[0], ...REDIS_HEADER_FIELDS),
        ),
      ),
    );
    const matching: ConversationHeader[] = [];
    const repairs: Promise<unknown>[] = [];
    candidates.forEach(({ id, key }, i) => {
      const header = redisHeader(id, records[i]);
      const entry = index.keyOf(id);
      if (!header) {
        repairs.push(commands.zrem(entry, id));
        return;
      }
      const real = index.scoreOf(header);
      if (real !== key) {
        // The entry fell behind its record (a second step still on its way, or lost).
        repairs.push(real > 0 ? commands.zadd(entry, real, id) : commands.zrem(entry, id));
        return;
      }
      if (matchesInboxQuery(header.state, header.counters, header.lastActivityAt, query)) {
        matching.push(header);
      }
    });
    const lastMembers = await this.connection.run(() =>
      Promise.all(matching.map(({ id }) => commands.zrange(keys.conversation(id)[4], -1, -1))),
    );
    await Promise.all(repairs).catch(() => undefined);
    return matching.map((header, i) => rowOf(header, lastMembers[i][0]));
  }

  /**
   * Every conversation's index entries and the counts, set again from the records, walking
   * the activity index (which holds every conversation, those from before the inbox too).
   * Run under the sweeper lock: once for the backfill, then now and then to put right what
   * a process that died between a change and its second step left. A record no count holds
   * yet (from before the inbox: no `ic` mark) is added to the counts by the walk that marks
   * it; the walk's whole count replaces the counts only if no change moved them during the
   * walk (`~gen`), since it would lose those changes.
   */
  async reindex(activityBuckets: string[]): Promise<number> {
    const { commands, keys } = this.connection;
    const tally = new Map<string, number>();
    const add = (field: string, into = tally) => into.set(field, (into.get(field) ?? 0) + 1);
    // Read before the walk: the walk's counts are set only if no change moved them meanwhile.
    const gen = await this.connection.run(() => commands.hget(keys.inboxCounts, '~gen'));
    let seen = 0;
    for (const bucket of activityBuckets) {
      for (let from = 0; ; from += REINDEX_BATCH) {
        const ids = await this.connection.run(() =>
          commands.zrange(bucket, from, from + REINDEX_BATCH - 1),
        );
        if (ids.length === 0) {
          break;
        }
        const records = await this.connection.run(() =>
          Promise.all(
            ids.map((id) => commands.hmget(keys.conversation(id)[0], ...REDIS_HEADER_FIELDS)),
          ),
        );
        // Records from before the inbox keep no counters: counted whole, once (recount-5.lua).
        await this.connection.run(() =>
          Promise.all(
            ids.map(async (id, i) => {
              if (records[i][0] !== null && records[i][16] === null) {
                const counters = await commands.chatRecount(...keys.conversation(id));
                counters.forEach((value, at) => (records[i][14 + at] = String(value)));
              }
            }),
          ),
        );
        // Records no count holds yet (from before the inbox): added to the counts now, once.
        const marked = await this.connection.run(() =>
          Promise.all(ids.map((id) => commands.chatMarkCounted(keys.conversation(id)[0]))),
        );
        const uncounted = new Map<string, number>();
        const writes: Promise<unknown>[] = [];
        ids.forEach((id, i) => {
          const header = redisHeader(id, records[i]);
          if (!header) {
            return;
          }
          seen++;
          if (marked[i] === 1) {
            add(header.state.status, uncounted);
            add(header.state.assignee ? ASSIGNED : UNASSIGNED, uncounted);
            if (header.state.assignee) {
              add(byAssignee(header.state.assignee, header.state.status), uncounted);
            }
          }
          const { state, counters } = header;
          writes.push(commands.zadd(keys.inboxIndex('act', id), header.lastActivityAt, id));
          const wait = keys.inboxIndex('wait', id);
          writes.push(
            counters.waitingSince > 0
              ? commands.zadd(wait, counters.waitingSince, id)
              : commands.zrem(wait, id),
          );
          const snooze = keys.inboxIndex('snooze', id);
          writes.push(
            state.status === 'snoozed'
              ? commands.zadd(snooze, state.snoozedUntil, id)
              : commands.zrem(snooze, id),
          );
          if (state.assignee) {
            writes.push(
              commands.zadd(keys.inboxAssignee(state.assignee), header.lastActivityAt, id),
            );
          }
          add(state.status);
          add(state.assignee ? ASSIGNED : UNASSIGNED);
          if (state.assignee) {
            add(byAssignee(state.assignee, state.status));
          }
        });
        for (const [field, delta] of uncounted) {
          // Not through countInbox-1.lua: these move no `~gen`, the walk counts them too.
          writes.push(commands.hincrby(keys.inboxCounts, field, delta));
        }
        await this.connection.run(() => Promise.all(writes));
        if (ids.length < REINDEX_BATCH) {
          break;
        }
      }
    }
    await this.connection.run(() =>
      commands.chatSetInboxCounts(keys.inboxCounts, gen ?? '', ...[...tally].flat()),
    );
    return seen;
  }
}

/** The sorted sets a list walks, and what an entry's score must be (0: no entry). */
interface ListIndex {
  buckets: string[];
  keyOf(id: string): string;
  scoreOf(header: ConversationHeader): number;
}

/** Conversations read at once by reindex. */
const REINDEX_BATCH = 500;

/** An inbox row from a record's header and its last standing message's member (if any). */
export function rowOf(header: ConversationHeader, lastMember: string | undefined): InboxRow {
  return {
    id: header.id,
    createdAt: header.createdAt,
    lastActivityAt: header.lastActivityAt,
    messageCount: header.messageCount,
    seq: header.version,
    state: header.state,
    counters: header.counters,
    lastMessage: lastMember === undefined ? null : lastMessageOf(lastMember.slice(SEQ_DIGITS)),
  };
}

/** One bucket's entries after a position, fetched a batch at a time (inboxScan-1.lua). */
class BucketCursor {
  private buffer: [id: string, key: number][] = [];
  private exhausted = false;

  constructor(
    private readonly bucket: string,
    private readonly desc: boolean,
    private position: InboxPosition | undefined,
    private readonly batch: number,
  ) {}

  get head(): [id: string, key: number] | undefined {
    return this.buffer[0];
  }

  /** Nothing buffered, and the bucket may have more. */
  get wantsFill(): boolean {
    return this.buffer.length === 0 && !this.exhausted;
  }

  /** Fetches the next batch if none is buffered and the bucket has more. */
  async fill(commands: RedisStoreConnection['commands']): Promise<void> {
    if (this.buffer.length > 0 || this.exhausted) {
      return;
    }
    const flat = await commands.chatInboxScan(
      this.bucket,
      this.desc ? 'desc' : 'asc',
      this.position?.key ?? 0,
      this.position?.id ?? '',
      this.batch,
    );
    for (let i = 0; i < flat.length; i += 2) {
      this.buffer.push([flat[i], Number(flat[i + 1])]);
    }
    this.exhausted = this.buffer.length < this.batch;
    const tail = this.buffer[this.buffer.length - 1];
    if (tail) {
      this.position = { id: tail[0], key: tail[1] };
    }
  }

  take(): void {
    this.buffer.shift();
  }
}

/** The first entry in traversal order among the cursors' heads. */
function nextOf(
  cursors: BucketCursor[],
  desc: boolean,
): { cursor: BucketCursor; id: string; key: number } | null {
  let best: { cursor: BucketCursor; id: string; key: number } | null = null;
  for (const cursor of cursors) {
    const head = cursor.head;
    if (!head) {
      continue;
    }
    const [id, key] = head;
    const first =
      !best ||
      (desc
        ? key > best.key || (key === best.key && id > best.id)
        : key < best.key || (key === best.key && id < best.id));
    if (first) {
      best = { cursor, id, key };
    }
  }
  return best;
}
