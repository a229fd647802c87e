import { STATUSES } from '../../records/conversation-state';
import { matchesInboxQuery } from '../inbox-query';
import type { ConversationStatus } from '../../records/conversation-state';
import type { InboxCounts, InboxPosition, InboxQuery } from '../../conversation.repository';
import { INBOX_EXAMINED_PER_ROW } from '../../conversation.repository';
import type { ConversationRecord, Filed } from './memory-records';

function filedOf(record: ConversationRecord): Filed {
  return {
    activity: record.lastActivityAt,
    waiting: record.waitingSince,
    status: record.status,
    assignee: record.assignee,
    team: record.team,
    externalId: record.customer.externalId ?? '',
  };
}

/** The record's field that holds the chunk a SortedRecords keeps it in. */
type Slot = 'activityChunk' | 'assigneeChunk' | 'waitingChunk';

/** Most records a chunk of a SortedRecords holds before it is split in two. */
const CHUNK = 64;

/** Whether `item` (as filed) comes before (key, id). */
function before(item: ConversationRecord, field: 'activity' | 'waiting', key: number, id: string) {
  const itemKey = (item.filed as Filed)[field];
  return itemKey < key || (itemKey === key && item.id < id);
}

/** Conversations in some (key, id) order, walked from a position (see InboxIndex.page). */
interface Ordered {
  keyOf(record: ConversationRecord): number;
  descending(from?: InboxPosition): IterableIterator<ConversationRecord>;
  ascending(from?: InboxPosition): IterableIterator<ConversationRecord>;
}

/**
 * Conversations in ascending (key, id) order, as filed: sorted chunks of at most CHUNK
 * records, each record holding its chunk (in its `slot` field). A change moves a conversation
 * to the end, where its new key goes: so a post costs a search of one chunk for its old place
 * and an append, and a chunk's worth of moves at most, however many are kept.
 */
export class SortedRecords implements Ordered {
  private chunks: ConversationRecord[][] = [];
  private count = 0;

  constructor(
    private readonly field: 'activity' | 'waiting',
    private readonly slot: Slot,
  ) {}

  get size(): number {
    return this.count;
  }

  insert(record: ConversationRecord): void {
    const filed = record.filed as Filed;
    const key = filed[this.field];
    this.count++;
    const chunks = this.chunks;
    const last = chunks[chunks.length - 1];
    let chunk: ConversationRecord[];
    if (!last) {
      chunk = [record];
      chunks.push(chunk);
    } else if (
      !before(record, this.field, this.keyOf(last[last.length - 1]), last[last.length - 1].id)
    ) {
      // The common case: its key is the newest.
      chunk = last;
      chunk.push(record);
    } else {
      let [c, i] = this.locate(key, record.id);
      if (c === chunks.length) {
        c--;
        i = chunks[c].length;
      }
      chunk = chunks[c];
      chunk.push(record);
      for (let j = chunk.length - 1; j > i; j--) {
        chunk[j] = chunk[j - 1];
      }
      chunk[i] = record;
    }
    record[this.slot] = chunk;
    if (chunk.length > CHUNK) {
      this.split(chunk);
    }
  }

  remove(record: ConversationRecord): void {
    const chunk = record[this.slot];
    const i = chunk ? chunk.indexOf(record) : -1;
    if (!chunk || i < 0) {
      return;
    }
    for (let j = i; j < chunk.length - 1; j++) {
      chunk[j] = chunk[j + 1];
    }
    chunk.pop();
    record[this.slot] = undefined;
    this.count--;
    if (chunk.length === 0) {
      this.chunks.splice(this.chunks.lastIndexOf(chunk), 1);
    }
  }

  /** Drops every evicted record, in one pass; the chunks stay the same arrays. */
  prune(): void {
    for (const chunk of this.chunks) {
      let kept = 0;
      for (const record of chunk) {
        if (record.evicted) {
          record[this.slot] = undefined;
        } else {
          chunk[kept++] = record;
        }
      }
      chunk.length = kept;
    }
    this.chunks = this.chunks.filter((chunk) => chunk.length > 0);
    this.count = this.chunks.reduce((sum, chunk) => sum + chunk.length, 0);
  }

  /** Records in descending order, strictly before `from` in it (all when absent). */
  *descending(from?: InboxPosition): IterableIterator<ConversationRecord> {
    let c = this.chunks.length - 1;
    let i = Infinity;
    if (from) {
      [c, i] = this.locate(from.key, from.id);
      if (c === this.chunks.length) {
        c--;
        i = Infinity;
      } else {
        i--;
      }
    }
    for (; c >= 0; c--) {
      const chunk = this.chunks[c];
      for (i = Math.min(i, chunk.length - 1); i >= 0; i--) {
        yield chunk[i];
      }
      i = Infinity;
    }
  }

  /** Records in ascending order, strictly after `from` (all when absent). */
  *ascending(from?: InboxPosition): IterableIterator<ConversationRecord> {
    let c = 0;
    let i = 0;
    if (from) {
      [c, i] = this.locate(from.key, from.id);
      if (this.chunks[c]?.[i]?.id === from.id) {
        i++;
      }
    }
    for (; c < this.chunks.length; c++) {
      const chunk = this.chunks[c];
      for (; i < chunk.length; i++) {
        yield chunk[i];
      }
      i = 0;
    }
  }

  keyOf(record: ConversationRecord): number {
    return (record.filed as Filed)[this.field];
  }

  /** Moves the upper half of a full chunk into a new chunk after it. */
  private split(chunk: ConversationRecord[]): void {
    const upper = chunk.slice(chunk.length >> 1);
    chunk.length = chunk.length >> 1;
    for (const record of upper) {
      record[this.slot] = upper;
    }
    this.chunks.splice(this.chunks.lastIndexOf(chunk) + 1, 0, upper);
  }

  /**
   * Where (key, id) is or would go: the chunk and the index in it of the first record at or
   * after it; [chunks.length, 0] past the last.
   */
  private locate(key: number, id: string): [number, number] {
    const { chunks, field } = this;
    let low = 0;
    let high = chunks.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      const chunk = chunks[mid];
      if (before(chunk[chunk.length - 1], field, key, id)) {
        low = mid + 1;
      } else {
        high = mid;
      }
    }
    if (low === chunks.length) {
      return [low, 0];
    }
    const chunk = chunks[low];
    let start = 0;
    let end = chunk.length;
    while (start < end) {
      const mid = (start + end) >>> 1;
      if (before(chunk[mid], field, key, id)) {
        start = mid + 1;
      } else {
        end = mid;
      }
    }
    return [low, start];
  }
}

/**
 * A few conversations in activity order, sorted when a page asks (a team's, a customer's):
 * they are not moved by posts, so they cost nothing until read.
 */
class SortedOnRead implements Ordered {
  private readonly records: ConversationRecord[];

  constructor(members: Iterable<ConversationRecord>) {
    this.records = [...members].sort((a, b) =>
      before(a, 'activity', this.keyOf(b), b.id) ? -1 : 1,
    );
  }

  keyOf(record: ConversationRecord): number {
    return (record.filed as Filed).activity;
  }

  *descending(from?: InboxPosition): IterableIterator<ConversationRecord> {
    for (let i = this.firstNotBefore(from) - 1; i >= 0; i--) {
      yield this.records[i];
    }
  }

  *ascending(from?: InboxPosition): IterableIterator<ConversationRecord> {
    let i = from ? this.firstNotBefore(from) : 0;
    if (from && this.records[i]?.id === from.id) {
      i++;
    }
    for (; i < this.records.length; i++) {
      yield this.records[i];
    }
  }

  private firstNotBefore(from?: InboxPosition): number {
    if (!from) {
      return this.records.length;
    }
    let low = 0;
    let high = this.records.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (before(this.records[mid], 'activity', from.key, from.id)) {
        low = mid + 1;
      } else {
        high = mid;
      }
    }
    return low;
  }
}

/** Members by one value of a field (a team, a customer), unordered. */
class Members {
  private readonly byValue = new Map<string, Set<ConversationRecord>>();

  get(value: string): Set<ConversationRecord> | undefined {
    return this.byValue.get(value);
  }

  add(value: string, record: ConversationRecord): void {
    if (value) {
      let set = this.byValue.get(value);
      if (!set) {
        set = new Set();
        this.byValue.set(value, set);
      }
      set.add(record);
    }
  }

  delete(value: string, record: ConversationRecord): void {
    const set = value ? this.byValue.get(value) : undefined;
    if (set?.delete(record) && set.size === 0) {
      this.byValue.delete(value);
    }
  }
}

type StatusCounts = Record<ConversationStatus, number>;
const noCounts = (): StatusCounts => ({ open: 0, pending: 0, snoozed: 0, resolved: 0 });

/**
 * The in-memory store's inbox indexes, kept in the same step as every change: every
 * conversation by activity, each assignee's (and the unassigned) by activity, the waiting
 * ones by waitingSince, each team's and customer's as sets, and the counts of each status
 * in all and per assignee. A post moves a conversation in two sorted lists (three when
 * whether it waits changes). A page reads the narrowest index its query allows and checks
 * each row against the rest of the query.
 */
export class InboxIndex {
  private readonly activity = new SortedRecords('activity', 'activityChunk');
  private readonly waiting = new SortedRecords('waiting', 'waitingChunk');
  private readonly assignees = new Map<string, SortedRecords>();
  private readonly teams = new Members();
  private readonly customers = new Members();
  private readonly totals = noCounts();
  private readonly perAssignee = new Map<string, StatusCounts>();

  add(record: ConversationRecord): void {
    const filed = filedOf(record);
    record.filed = filed;
    this.activity.insert(record);
    this.assigneeList(filed.assignee).insert(record);
    if (filed.waiting > 0) {
      this.waiting.insert(record);
    }
    this.teams.add(filed.team, record);
    this.customers.add(filed.externalId, record);
    this.count(filed, 1);
  }

  /**
   * Files the record again after a change, only where what it was filed under moved (a post
   * moves it to the end of the activity and assignee lists), reusing its Filed: a post
   * allocates nothing here.
   */
  update(record: ConversationRecord): void {
    const filed = record.filed;
    if (!filed || record.evicted) {
      return;
    }
    const activityMoved = filed.activity !== record.lastActivityAt;
    const assigneeMoved = filed.assignee !== record.assignee;
    const counted = assigneeMoved || filed.status !== record.status;
    if (counted) {
      this.count(filed, -1);
    }
    if (activityMoved || assigneeMoved) {
      this.activity.remove(record);
      this.assigneeList(filed.assignee).remove(record);
      this.dropEmptyList(filed.assignee);
    }
    if (filed.waiting !== record.waitingSince && filed.waiting > 0) {
      this.waiting.remove(record);
    }
    const waitingMoved = filed.waiting !== record.waitingSince;
    if (filed.team !== record.team) {
      this.teams.delete(filed.team, record);
      this.teams.add(record.team, record);
    }
    const externalId = record.customer.externalId ?? '';
    if (filed.externalId !== externalId) {
      this.customers.delete(filed.externalId, record);
      this.customers.add(externalId, record);
    }
    filed.activity = record.lastActivityAt;
    filed.waiting = record.waitingSince;
    filed.status = record.status;
    filed.assignee = record.assignee;
    filed.team = record.team;
    filed.externalId = externalId;
    if (activityMoved || assigneeMoved) {
      this.activity.insert(record);
      this.assigneeList(filed.assignee).insert(record);
    }
    if (waitingMoved && filed.waiting > 0) {
      this.waiting.insert(record);
    }
    if (counted) {
      this.count(filed, 1);
    }
  }

  /** After a sweep marked records evicted: drops them everywhere, one pass per list. */
  pruneEvicted(evicted: ConversationRecord[]): void {
    if (evicted.length === 0) {
      return;
    }
    for (const record of evicted) {
      const filed = record.filed as Filed;
      this.count(filed, -1);
      this.teams.delete(filed.team, record);
      this.customers.delete(filed.externalId, record);
    }
    this.activity.prune();
    this.waiting.prune();
    for (const [assignee, list] of this.assignees) {
      list.prune();
      this.dropEmptyList(assignee);
    }
  }

  /**
   * Each status's count, and how many are assigned or not; with `assignee`, the statuses
   * and `assigned` are that assignee's, and `unassigned` is still the whole queue's.
   */
  counts(assignee?: string): InboxCounts {
    const sum = (of: StatusCounts) => of.open + of.pending + of.snoozed + of.resolved;
    const unassigned = sum(this.perAssignee.get('') ?? noCounts());
    if (assignee !== undefined) {
      const of = this.perAssignee.get(assignee) ?? noCounts();
      return { ...of, assigned: sum(of), unassigned };
    }
    return { ...this.totals, assigned: this.activity.size - unassigned, unassigned };
  }

  /**
   * The rows of a page: those that match, in the query's order after its position, at most
   * `limit`, having examined at most INBOX_EXAMINED_PER_ROW × limit; `next` is where the
   * last examined row stands (null when the traversal ended).
   */
  page(query: InboxQuery): { records: ConversationRecord[]; next: InboxPosition | null } {
    const { source, ascending } = this.sourceFor(query);
    const records: ConversationRecord[] = [];
    const budget = INBOX_EXAMINED_PER_ROW * query.limit;
    let examined = 0;
    const rows = ascending ? source.ascending(query.after) : source.descending(query.after);
    for (const record of rows) {
      const key = source.keyOf(record);
      if (ascending ? key >= query.t0 : key < (query.activeSince ?? -Infinity)) {
        return { records, next: null };
      }
      examined++;
      if (matchesInboxQuery(record, record, record.lastActivityAt, query)) {
        records.push(record);
      }
      if (records.length === query.limit || examined === budget) {
        return { records, next: { key, id: record.id } };
      }
    }
    return { records, next: null };
  }

  /** The narrowest index for the query, and its direction. */
  private sourceFor(query: InboxQuery): { source: Ordered; ascending: boolean } {
    if (query.sort === 'waitingSince') {
      return { source: this.waiting, ascending: true };
    }
    if (query.customer !== undefined) {
      return {
        source: new SortedOnRead(this.customers.get(query.customer) ?? []),
        ascending: false,
      };
    }
    if (typeof query.assignee === 'string') {
      return {
        source: this.assignees.get(query.assignee) ?? new SortedOnRead([]),
        ascending: false,
      };
    }
    if (query.team !== undefined) {
      return { source: new SortedOnRead(this.teams.get(query.team) ?? []), ascending: false };
    }
    return { source: this.activity, ascending: false };
  }

  private assigneeList(assignee: string): SortedRecords {
    let list = this.assignees.get(assignee);
    if (!list) {
      list = new SortedRecords('activity', 'assigneeChunk');
      this.assignees.set(assignee, list);
    }
    return list;
  }

  private dropEmptyList(assignee: string): void {
    if (this.assignees.get(assignee)?.size === 0) {
      this.assignees.delete(assignee);
    }
  }

  private count(filed: Filed, sign: number): void {
    this.totals[filed.status] += sign;
    let of = this.perAssignee.get(filed.assignee);
    if (!of) {
      of = noCounts();
      this.perAssignee.set(filed.assignee, of);
    }
    of[filed.status] += sign;
    if (STATUSES.every((status) => of[status] === 0)) {
      this.perAssignee.delete(filed.assignee);
    }
  }
}
