import { CustomerTokenHashes } from '../access/customer-token-hashes';
import type {
  ConversationDraft,
  ConversationHeader,
  ConversationSummary,
  HistoryVersion,
  InboxRow,
  LastRead,
  StoredCustomerToken,
} from './records/conversation.codec';
import type { ConversationStatus, StatePatch, StateRefusal } from './records/conversation-state';
import type { AppendedMessage, MessageDraft, Sender } from './records/message.codec';

// The records every store keeps, and their stored forms, are in records/.
export { AppendedMessage, SENDERS } from './records/message.codec';
export type { MessageJson, Sender, StoredMessage } from './records/message.codec';
export type {
  ConversationHeader,
  ConversationSummary,
  HistoryVersion,
  InboxRow,
  LastRead,
  StoredCustomerToken,
} from './records/conversation.codec';

export interface ConversationHistory extends ConversationHeader {
  /**
   * Every message as the text of a JSON array of StoredMessage, chronological (ascending
   * timestamp, ties by seq), in pieces of a few kilobytes: joined, they are the array.
   * Text, because each message is kept as its MessageJson, made once, when it is stored, and
   * a read only joins stored strings. Pieces, because a long history then never needs one
   * large allocation (costly on small machines) and crosses the cluster IPC channel as small
   * messages.
   */
  messagesJson: string[];
}

/** A history whose messages the caller already holds at this version. */
export interface UnchangedHistory extends ConversationHeader {
  messagesJson: null;
}

/**
 * What makes a write safe to retry (an Idempotency-Key, see conversations/idempotency.ts). The
 * store decides it in the same atomic step that applies the write, so a retry finds the
 * result of the first attempt however that attempt's answer was lost, and nothing is ever
 * applied twice for one key.
 */
export interface IdempotentWrite {
  /** The caller's key digested together with the caller's scope: never the raw header. */
  key: string;
  /** The request (method, path, body) digested: the same key with another request is refused. */
  fingerprint: string;
  /** How long a post's key is kept (a create's key lives as long as its conversation). */
  ttlMs: number;
}

export interface NewConversation extends ConversationDraft {
  /** With `idempotency`, derived from its key (see conversationIdFor), so a retry names it again. */
  id: string;
  /** The store refuses with `capacity_exceeded` once it holds this many conversations. */
  maxConversations: number;
  /**
   * What the store keeps of the conversation's customer token (see access/customer-tokens.ts);
   * without one, only API keys reach the conversation. A replayed create puts it in place of
   * the first token's: that token was never kept, so it cannot be given again.
   */
  customerToken?: StoredCustomerToken;
  /**
   * A retry of a create that was applied finds the conversation (`replayed`) as it was
   * created, even at capacity; the same key with another request is `idempotency_key_reused`.
   */
  idempotency?: IdempotentWrite;
}

export interface NewMessage extends MessageDraft {
  /** The store refuses with `conversation_full` once the conversation holds this many messages. */
  maxMessages: number;
  /**
   * A retry of a post that was applied gets the message it stored (`replayed`), even if the
   * message was deleted or the conversation filled up since; kept with the conversation for
   * `ttlMs`. The same key with another request is `idempotency_key_reused`.
   */
  idempotency?: IdempotentWrite;
}

/** A create's answer: `replayed` when an earlier attempt with the same key made it. */
export interface CreatedConversation extends ConversationSummary {
  replayed?: boolean;
}

export type ChangeType =
  | 'message.created'
  | 'message.deleted'
  | 'conversation.read'
  | 'conversation.updated'
  | 'conversation.evicted';

/**
 * One change to a conversation, as its event stream tells it. `seq` is the seq the change
 * took (for an eviction: the conversation's last seq); `data` is the event's JSON text: the
 * message for message.created, `{"messageId","seq"}` for message.deleted, `{"sender","seq"}`
 * (the new horizon) for conversation.read, the state as an API key sees it for
 * conversation.updated (stateChangeJson), `{}` for conversation.evicted.
 */
export interface ConversationChange {
  conversationId: string;
  seq: number;
  type: ChangeType;
  data: string;
}

/** A side reports how far it has read (see ConversationRepository.markRead). */
export interface ReadReceipt {
  sender: Sender;
  /** The seq read up to (any change's): at most the conversation's last seq. */
  seq: number;
  now: number;
}

/** A read's answer: the horizons after it, and the seq it took when it moved one. */
export interface ReadState {
  lastRead: LastRead;
  /** Absent when the horizon was already there or beyond: nothing changed. */
  seq?: number;
}

/**
 * That a side is typing, or stopped. Ephemeral: no seq, never stored or replayed, not
 * activity; told to every watcher of the conversation, in every process and instance.
 */
export interface TypingSignal {
  conversationId: string;
  sender: Sender;
  typing: boolean;
  /** When a client hides the indicator unless renewed (now + TYPING_TTL_MS). */
  expiresAt: number;
}

/** Who a watch tells (see ConversationRepository.watch). */
export interface ChangeListener {
  /** A change to the conversation, in seq order. */
  change(change: ConversationChange): void;
  /** A typing signal: outside the seq order, and never part of a gap; absent: not wanted. */
  typing?(signal: TypingSignal): void;
  /**
   * Changes may have been missed since the last one told (the store's connection dropped):
   * read them with changesAfter from the last seq handled, and end if that read fails. Told
   * once the watch is in effect again, so nothing made after the read is missed; a store
   * that cannot watch again (a worker whose primary is gone) tells it too, and its reads fail.
   */
  gap(): void;
}

/** A watch on one conversation (see ConversationRepository.watch). */
export interface Watch {
  /**
   * Resolves once the watch is in effect: every change made after that, by any process or
   * instance, is told (or, if the store's connection drops meanwhile, a gap is). Rejects
   * (with a StoreError) when it cannot be made; stop it then.
   */
  ready: Promise<void>;
  stop(): void;
}

/** The changes after a seq, from the store's bounded replay buffer. */
export interface ChangesAfter {
  /** The conversation's last seq now. */
  lastSeq: number;
  /** False when the buffer no longer reaches back to the seq asked for: reload instead. */
  complete: boolean;
  /** Ascending seq; empty when incomplete. */
  changes: ConversationChange[];
}

/** Which page of a conversation's messages, in seq order: at most one cursor. */
export interface PageQuery {
  /** The `limit` messages that follow this seq. */
  after?: number;
  /** The `limit` messages that precede this seq. */
  before?: number;
  limit: number;
}

export interface MessagePage {
  /** The page's messages as the text of a JSON array, ascending seq. */
  messagesJson: string;
  /** More messages exist in the direction of travel: newer for `after`, older otherwise. */
  hasMore: boolean;
}

/**
 * A change of a conversation's state (PATCH, or a claim). Applied only if `ifMatch`, when
 * given, names the conversation's life and no state change took a seq above its version.
 */
export interface StateUpdate {
  patch: StatePatch;
  /** Assign `patch.assignee` only if the conversation is unassigned (see patchedState). */
  claim?: boolean;
  ifMatch?: HistoryVersion;
  now: number;
}

/**
 * A state change's answer: the conversation after it (its header, with the seq the change
 * took, if it changed anything), or why it was refused, which changed nothing.
 */
export type StateUpdated =
  { conversation: ConversationHeader; seq?: number } | { refused: StateRefusal };

/** Which conversations a page of the inbox list holds (see ConversationRepository.list). */
export interface InboxQuery {
  /** Any of these (as statusAt reads them at `now`); null: every status. */
  statuses: ConversationStatus[] | null;
  /** An assignee; '' unassigned (`none`); null assigned to anyone (`any`); absent: all. */
  assignee?: string | null;
  team?: string;
  /** customer.externalId. */
  customer?: string;
  /** Only those where this side has unread messages. */
  unread?: 'agent' | 'customer';
  /** Only those with lastActivityAt at or after this. */
  activeSince?: number;
  /** Newest activity first, or the queue: oldest waitingSince first, only those waiting. */
  sort: '-lastActivityAt' | 'waitingSince';
  limit: number;
  /** Where the last page ended (its nextCursor's position); absent: from the start. */
  after?: InboxPosition;
  /** The traversal's start: a waitingSince traversal stops before it. */
  t0: number;
  now: number;
}

/** A place in a traversal: the sort key and id of the last row examined. */
export interface InboxPosition {
  key: number;
  id: string;
}

export interface InboxPage {
  rows: InboxRow[];
  /** Where the next page starts; null: the traversal is over. */
  next: InboxPosition | null;
}

export interface InboxCounts {
  open: number;
  pending: number;
  snoozed: number;
  resolved: number;
  assigned: number;
  unassigned: number;
}

/** One event of the inbox feed (see ConversationRepository.watchInbox). */
export type InboxEvent =
  | { type: 'conversation.created' | 'conversation.updated'; row: InboxRow }
  | { type: 'conversation.evicted'; conversationId: string };

export interface InboxListener {
  event(event: InboxEvent): void;
  /** Events may have been missed: the client lists again (`reset`). */
  gap(): void;
}

/** A page examines at most this many rows per row asked for (InboxQuery.limit). */
export const INBOX_EXAMINED_PER_ROW = 10;

/** What a store holds now. */
export interface StoreStats {
  conversations: number;
  messages: number;
  /** What the in-memory store holds as its byte budget counts it, and that budget. */
  bytes?: number;
  maxBytes?: number;
}

export interface DeletedMessage {
  messageId: string;
  seq: number;
}

/**
 * The conversations' storage port: conversations, their messages, pages, replay and watches,
 * and what a write must decide atomically with them (Idempotency-Keys, the customer token's
 * hash, which access control reads as CustomerTokenHashes). Rate-limit counters have a port of
 * their own (access/rate-limits/rate-limit.store.ts), kept on the same connection. Every
 * implementation applies each write atomically and in one place,
 * so `seq` stays unique and gap-free however many callers write at once, and rejects
 * with a StoreError (see common/errors/store-error.ts) rather than returning sentinels.
 *
 * Activity (create, post, delete, a read receipt that moves a horizon) moves a
 * conversation's `lastActivityAt`; reads of the store and typing signals do not.
 */
export abstract class ConversationRepository implements CustomerTokenHashes {
  /** What the store is, as health reports name it: `in-memory`, `cluster-primary`, ... */
  abstract readonly kind: string;

  abstract createConversation(input: NewConversation): Promise<CreatedConversation>;

  /** Null when the conversation does not exist. */
  abstract getConversation(conversationId: string): Promise<ConversationHistory | null>;

  /**
   * As getConversation, except that when the history is still at `known` (the same life and
   * version) the answer leaves the messages out (`messagesJson: null`): the caller already
   * holds them.
   */
  abstract getConversationIfChanged(
    conversationId: string,
    known: HistoryVersion,
  ): Promise<ConversationHistory | UnchangedHistory | null>;

  abstract appendMessage(conversationId: string, input: NewMessage): Promise<AppendedMessage>;

  abstract deleteMessage(
    conversationId: string,
    messageId: string,
    now: number,
  ): Promise<DeletedMessage>;

  /**
   * Moves the sender's read horizon up to `receipt.seq` taken down to the seq of the last
   * standing message at or below it: a change, which takes the next seq, is activity, and is
   * told as `conversation.read`. A seq that comes down to the horizon or below changes
   * nothing (the answer has no `seq`). So only a new message can move a horizon, and
   * receipts of receipts settle. Deleted messages do not count: a horizon always names a
   * message of the history, and the seq index every store keeps answers it. Rejects with
   * conversation_not_found, or seq_beyond_last when the seq is beyond the last seq.
   */
  abstract markRead(conversationId: string, receipt: ReadReceipt): Promise<ReadState>;

  /**
   * Tells every watcher of the conversation, in every process and instance, of a typing
   * signal; stores nothing. Rejects with conversation_not_found.
   */
  abstract sendTyping(signal: TypingSignal): Promise<void>;

  /**
   * Removes every conversation whose last activity is before `cutoff` and returns how many
   * it removed. Its cost grows with the number removed, not the number stored, and it
   * yields to the event loop between chunks.
   */
  abstract evictInactive(cutoff: number): Promise<number>;

  /**
   * A page of the conversation's messages in seq order, at a cost that grows with the page,
   * not the conversation; null when the conversation does not exist. With neither cursor:
   * the newest `limit`.
   */
  abstract getPage(conversationId: string, query: PageQuery): Promise<MessagePage | null>;

  /**
   * The changes to a conversation after `afterSeq`, from a buffer of the last
   * EVENT_REPLAY_LIMIT; null when the conversation does not exist.
   */
  abstract changesAfter(conversationId: string, afterSeq: number): Promise<ChangesAfter | null>;

  /**
   * Tells `listener` of every change to the conversation, in seq order, whichever process or
   * instance made it, from when the watch's `ready` resolves; a reader that must miss nothing
   * awaits `ready` before it reads where to start (changesAfter). Watches of one conversation
   * share one upstream subscription: a second watch made while the first's is still being
   * set up is ready when that is. An eviction is told once the sweep that removed the
   * conversation has finished; a possible loss of changes is told as a gap.
   */
  abstract watch(conversationId: string, listener: ChangeListener): Watch;

  /**
   * The conversation's customer token as given at creation (its hash and mark); null when the
   * conversation does not exist (or has no token).
   */
  abstract customerToken(conversationId: string): Promise<StoredCustomerToken | null>;

  /**
   * What the store holds now, at a cost that does not grow with it. It also shows that the
   * store answers: the readiness probe calls it.
   */
  abstract stats(): Promise<StoreStats>;

  /**
   * Applies a state change atomically (patchedState decides it): a change that changes
   * something takes the next seq, is activity, and is told as conversation.updated; one that
   * changes nothing answers with no seq. A snooze keeps the conversation from eviction until
   * CONVERSATION_TTL_MS after it wakes. Rejects with conversation_not_found or store_full.
   */
  abstract updateState(conversationId: string, update: StateUpdate): Promise<StateUpdated>;

  /**
   * Writes the wake of every snooze due at `now` as a state change (status open); how many.
   * Called about every second by the store's owner.
   */
  abstract wakeSnoozed(now: number): Promise<number>;

  /**
   * A page of the inbox: the conversations that match, in the query's order, after its
   * position; it examines at most INBOX_EXAMINED_PER_ROW × limit rows, so it may end short
   * with a next position.
   */
  abstract list(query: InboxQuery): Promise<InboxPage>;

  /** How many conversations there are of each status, and assigned or not (of one assignee). */
  abstract counts(assignee?: string): Promise<InboxCounts>;

  /**
   * Tells `listener` of every conversation created, changed (a post, delete, read or state
   * change) or evicted, whichever process or instance made it, from when `ready` resolves.
   * No replay: a possible loss is told as a gap.
   */
  abstract watchInbox(listener: InboxListener): Watch;
}
