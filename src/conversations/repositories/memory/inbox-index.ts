import { statusAt, STATUSES } from '../../records/conversation-state';
import type { ConversationStatus } from '../../records/conversation-state';
import type { InboxCounts, InboxPosition, InboxQuery } from '../../conversation.repository';
import { INBOX_EXAMINED_PER_ROW } from '../../conversation.repository';
import type { ConversationRecord } from './memory-records';

/** What the index filed a conversation under: its sort keys and filter values then. */
export interface Filed {
  activity: number;
  waiting: number;
  status: ConversationStatus;
  assignee: string;
  team: string;
  externalId: string;
  unreadAgent: boolean;
  unreadCustomer: boolean;
}

function filedOf(record: ConversationRecord): Filed {
  return {
    activity: record.lastActivityAt,
    waiting: record.waitingSince,
    status: record.status,
    assignee: record.assignee,
    team: record.team,
    externalId: record.customer.externalId ?? '',
    unreadAgent: record.unreadAgent > 0,
    unreadCustomer: record.unreadCustomer > 0,
  };
}

/** Most records a chunk of a SortedRecords holds before it is split in two. */
const CHUNK = 64;

/**
 * Conversations in ascending (key, id) order, as filed: a list of sorted chunks of at most
 * CHUNK records, so that an insert or removal anywhere moves at most a chunk's worth,
 * however many conversations share a key or how old the one that moves is.
 */
export class SortedRecords {
  private chunks: ConversationRecord[][] = [];
  private count = 0;

  constructor(private readonly field: 'activity' | 'waiting') {}

  get size(): number {
    return this.count;
  }

  insert(record: ConversationRecord): void {
    const filed = record.filed as Filed;
    this.count++;
    if (this.chunks.length === 0) {
      this.chunks.push([record]);
      return;
    }
    let [c, i] = this.locate(filed[this.field], record.id);
    if (c === this.chunks.length) {
      c--;
      i = this.chunks[c].length;
    }
    const chunk = this.chunks[c];
    // By hand: splice would allocate the array of what it removed, on every post.
    chunk.push(record);
    for (let j = chunk.length - 1; j > i; j--) {
      chunk[j] = chunk[j - 1];
    }
    chunk[i] = record;
    if (chunk.length > CHUNK) {
      this.chunks.splice(c + 1, 0, chunk.splice(chunk.length >> 1));
    }
  }

  remove(record: ConversationRecord): void {
    const filed = record.filed as Filed;
    const [c, i] = this.locate(filed[this.field], record.id);
    const chunk = this.chunks[c];
    if (chunk?.[i] === record) {
      for (let j = i; j < chunk.length - 1; j++) {
        chunk[j] = chunk[j + 1];
      }
      chunk.pop();
      this.count--;
      if (chunk.length === 0) {
        this.chunks.splice(c, 1);
      }
    }
  }

  /** Drops every evicted record, in one pass. */
  prune(): void {
    this.chunks = this.chunks
      .map((chunk) => chunk.filter((record) => !record.evicted))
      .filter((chunk) => chunk.length > 0);
    this.count = this.chunks.reduce((sum, chunk) => sum + chunk.length, 0);
  }

  /** Records in descending order, strictly before `from` in it (all when absent). */
  *descending(from?: InboxPosition): IterableIterator<ConversationRecord> {
    let c = this.chunks.length - 1;
    let i = c >= 0 ? this.chunks[c].length - 1 : -1;
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

  /**
   * Where (key, id) is or would go: the chunk and the index in it of the first record at or
   * after it; [chunks.length, 0] past the last.
   */
  private locate(key: number, id: string): [number, number] {
    const chunks = this.chunks;
    let low = 0;
    let high = chunks.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      const chunk = chunks[mid];
      if (this.before(chunk[chunk.length - 1], key, id)) {
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
      if (this.before(chunk[mid], key, id)) {
        start = mid + 1;
      } else {
        end = mid;
      }
    }
    return [low, start];
  }

  /** Whether the record comes before (key, id). */
  private before(item: ConversationRecord, key: number, id: string): boolean {
    const itemKey = (item.filed as Filed)[this.field];
    return itemKey < key || (itemKey === key && item.id < id);
  }
}

/** Sorted sets by one value of a field, made on first use and dropped when empty. */
class Partition {
  private readonly parts = new Map<string, SortedRecords>();

  get(value: string): SortedRecords | undefined {
    return this.parts.get(value);
  }

  insert(value: string, record: ConversationRecord): void {
    let part = this.parts.get(value);
    if (!part) {
      part = new SortedRecords('activity');
      this.parts.set(value, part);
    }
    part.insert(record);
  }

  remove(value: string, record: ConversationRecord): void {
    const part = this.parts.get(value);
    part?.remove(record);
    if (part?.size === 0) {
      this.parts.delete(value);
    }
  }

  prune(): void {
    for (const [value, part] of this.parts) {
      part.prune();
      if (part.size === 0) {
        this.parts.delete(value);
      }
    }
  }
}

type StatusCounts = Record<ConversationStatus, number>;
const noCounts = (): StatusCounts => ({ open: 0, pending: 0, snoozed: 0, resolved: 0 });

/**
 * The in-memory store's inbox indexes, kept in the same step as every change: every
 * conversation by activity, the waiting ones by waitingSince, and by status, assignee, team,
 * customer and unread side (each by activity), with counts of each status in all and per
 * assignee. A page reads the narrowest index the query allows and checks each row against
 * the rest of the query.
 */
export class InboxIndex {
  private readonly activity = new SortedRecords('activity');
  private readonly waiting = new SortedRecords('waiting');
  private readonly statuses = new Partition();
  private readonly assignees = new Partition();
  private readonly teams = new Partition();
  private readonly customers = new Partition();
  private readonly unreadAgent = new SortedRecords('activity');
  private readonly unreadCustomer = new SortedRecords('activity');
  private readonly totals = noCounts();
  private readonly perAssignee = new Map<string, StatusCounts>();

  add(record: ConversationRecord): void {
    record.filed = filedOf(record);
    this.file(record, 1);
  }

  /**
   * Files the record again after a change: only in the indexes whose key or membership
   * moved (a post moves the activity-sorted ones, not the waiting one unless the customer
   * began waiting), reusing its Filed, so that a post allocates nothing here.
   */
  update(record: ConversationRecord): void {
    const filed = record.filed;
    if (!filed || record.evicted) {
      return;
    }
    const externalId = record.customer.externalId ?? '';
    const unreadAgent = record.unreadAgent > 0;
    const unreadCustomer = record.unreadCustomer > 0;
    const counted = filed.status !== record.status || filed.assignee !== record.assignee;
    const byActivity =
      counted ||
      filed.activity !== record.lastActivityAt ||
      filed.team !== record.team ||
      filed.externalId !== externalId ||
      filed.unreadAgent !== unreadAgent ||
      filed.unreadCustomer !== unreadCustomer;
    const waiting = filed.waiting !== record.waitingSince;
    if (!byActivity && !waiting) {
      return;
    }
    if (waiting && filed.waiting > 0) {
      this.waiting.remove(record);
    }
    if (byActivity) {
      this.fileByActivity(record, 'remove');
    }
    if (counted) {
      this.count(filed, -1);
    }
    filed.activity = record.lastActivityAt;
    filed.waiting = record.waitingSince;
    filed.status = record.status;
    filed.assignee = record.assignee;
    filed.team = record.team;
    filed.externalId = externalId;
    filed.unreadAgent = unreadAgent;
    filed.unreadCustomer = unreadCustomer;
    if (counted) {
      this.count(filed, 1);
    }
    if (byActivity) {
      this.fileByActivity(record, 'insert');
    }
    if (waiting && filed.waiting > 0) {
      this.waiting.insert(record);
    }
  }

  /** After a sweep marked records evicted: drops them everywhere, one pass per index. */
  pruneEvicted(evicted: ConversationRecord[]): void {
    if (evicted.length === 0) {
      return;
    }
    for (const record of evicted) {
      const filed = record.filed as Filed;
      this.count(filed, -1);
    }
    this.activity.prune();
    this.waiting.prune();
    this.statuses.prune();
    this.assignees.prune();
    this.teams.prune();
    this.customers.prune();
    this.unreadAgent.prune();
    this.unreadCustomer.prune();
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
      if (matches(record, query)) {
        records.push(record);
      }
      if (records.length === query.limit || examined === budget) {
        return { records, next: { key, id: record.id } };
      }
    }
    return { records, next: null };
  }

  /** The narrowest index for the query, and its direction. */
  private sourceFor(query: InboxQuery): { source: SortedRecords; ascending: boolean } {
    const empty = { source: new SortedRecords('activity'), ascending: false };
    if (query.sort === 'waitingSince') {
      return { source: this.waiting, ascending: true };
    }
    if (query.customer !== undefined) {
      return { ...empty, source: this.customers.get(query.customer) ?? empty.source };
    }
    if (typeof query.assignee === 'string') {
      return { ...empty, source: this.assignees.get(query.assignee) ?? empty.source };
    }
    if (query.team !== undefined) {
      return { ...empty, source: this.teams.get(query.team) ?? empty.source };
    }
    if (query.unread !== undefined) {
      return {
        ...empty,
        source: query.unread === 'agent' ? this.unreadAgent : this.unreadCustomer,
      };
    }
    if (query.statuses?.length === 1 && query.statuses[0] !== 'open') {
      // `open` also holds due snoozes not yet woken: read those from the whole index.
      return { ...empty, source: this.statuses.get(query.statuses[0]) ?? empty.source };
    }
    return { ...empty, source: this.activity };
  }

  /** Files (1) or unfiles (-1) the record under record.filed, everywhere. */
  private file(record: ConversationRecord, sign: 1 | -1): void {
    const op = sign > 0 ? 'insert' : 'remove';
    if ((record.filed as Filed).waiting > 0) {
      this.waiting[op](record);
    }
    this.fileByActivity(record, op);
    this.count(record.filed as Filed, sign);
  }

  /** Files or unfiles the record in every index sorted by activity. */
  private fileByActivity(record: ConversationRecord, op: 'insert' | 'remove'): void {
    const filed = record.filed as Filed;
    this.activity[op](record);
    this.statuses[op](filed.status, record);
    this.assignees[op](filed.assignee, record);
    if (filed.team) {
      this.teams[op](filed.team, record);
    }
    if (filed.externalId) {
      this.customers[op](filed.externalId, record);
    }
    if (filed.unreadAgent) {
      this.unreadAgent[op](record);
    }
    if (filed.unreadCustomer) {
      this.unreadCustomer[op](record);
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

/** Whether the record matches every filter of the query, as it stands now. */
function matches(record: ConversationRecord, query: InboxQuery): boolean {
  if (query.statuses && !query.statuses.includes(statusAt(record, query.now).status)) {
    return false;
  }
  if (query.assignee !== undefined) {
    if (query.assignee === null ? record.assignee === '' : record.assignee !== query.assignee) {
      return false;
    }
  }
  if (query.team !== undefined && record.team !== query.team) {
    return false;
  }
  if (query.customer !== undefined && record.customer.externalId !== query.customer) {
    return false;
  }
  if (query.unread === 'agent' && record.unreadAgent === 0) {
    return false;
  }
  if (query.unread === 'customer' && record.unreadCustomer === 0) {
    return false;
  }
  if (query.activeSince !== undefined && record.lastActivityAt < query.activeSince) {
    return false;
  }
  if (query.sort === 'waitingSince' && record.waitingSince === 0) {
    return false;
  }
  return true;
}
