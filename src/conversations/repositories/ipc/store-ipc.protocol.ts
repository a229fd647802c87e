import { StoreErrorCode } from '../../../common/errors/store-error';
import {
  ConversationChange,
  ConversationRepository,
  InboxEvent,
  TypingSignal,
} from '../../conversation.repository';
import { RateLimitStore } from '../../../access/rate-limits/rate-limit.store';
import { WebhookStore } from '../../../webhooks/webhook.store';

/**
 * The wire protocol between a worker's IPC stores (IpcConversationRepository,
 * IpcRateLimitStore, IpcWebhookStore, over one IpcStoreChannel) and the primary's StoreHub. A call names its
 * port and one of that port's operations. Calls made in the same event-loop turn travel as one
 * batch, and their replies as one.
 */
export const STORE_CHANNEL = 'chat:store';

/** Each port's methods that may be called over IPC, and nothing else. */
export const STORE_PORTS = {
  conversations: [
    'createConversation',
    'getConversation',
    'getConversationIfChanged',
    'appendMessage',
    'deleteMessage',
    'markRead',
    'sendTyping',
    'evictInactive',
    'stats',
    'changesAfter',
    'getPage',
    'customerToken',
    'updateState',
    'wakeSnoozed',
    'list',
    'counts',
  ] as const satisfies readonly (keyof ConversationRepository)[],
  rateLimit: ['countHit'] as const satisfies readonly (keyof RateLimitStore)[],
  webhooks: [
    'createEndpoint',
    'listEndpoints',
    'getEndpoint',
    'updateEndpoint',
    'deleteEndpoint',
    'rotateSecret',
    'sendTest',
    'deliveries',
    'retryDelivery',
    'recover',
    'pendingCounts',
  ] as const satisfies readonly (keyof WebhookStore)[],
};

export type StorePort = keyof typeof STORE_PORTS;

/** An operation of `Port` (of any port by default). */
export type StoreOperation<Port extends StorePort = StorePort> = (typeof STORE_PORTS)[Port][number];

export interface StoreCall {
  id: number;
  port: StorePort;
  op: StoreOperation;
  args: unknown[];
}

/**
 * A call's answer: what the store's method resolved to, as JSON. The records in it cross in
 * the forms records/ gives them: a conversation's as the store built them (ConversationSummary,
 * ConversationHeader), messages as their stored text (MessageJson), except a post's answer,
 * an AppendedMessage, whose own properties are the message's fields: the worker makes its
 * text again (AppendedMessage.fromFields).
 */
export type StoreReply =
  { id: number; ok: true; result: unknown } | { id: number; ok: false; code: StoreErrorCode };

export interface StoreRequestBatch {
  ch: typeof STORE_CHANNEL;
  calls: StoreCall[];
}

export interface StoreReplyBatch {
  ch: typeof STORE_CHANNEL;
  replies: StoreReply[];
}

/**
 * Leading pieces of a long history (ConversationHistory.messagesJson) for call `id`, sent
 * ahead of the batch that answers the call, so that no single message is large. The
 * receiver puts them in front of the pieces the answer itself carries.
 */
export interface StoreReplyPart {
  ch: typeof STORE_CHANNEL;
  part: { id: number; messagesJson: string[] };
}

/** Worker → primary: start or stop sending this worker the changes to a conversation. */
export interface WatchRequest {
  ch: typeof STORE_CHANNEL;
  watch?: string;
  unwatch?: string;
  /** Start (true) or stop (false) sending this worker the inbox feed. */
  inbox?: boolean;
}

/** Primary → worker: an event of the inbox feed, which the worker watches. */
export interface InboxNotice {
  ch: typeof STORE_CHANNEL;
  inboxEvent: InboxEvent;
}

export function isInboxNotice(message: unknown): message is InboxNotice {
  const m = message as InboxNotice | null;
  return (
    typeof m === 'object' &&
    m !== null &&
    m.ch === STORE_CHANNEL &&
    typeof m.inboxEvent === 'object'
  );
}

/** Primary → worker: a change to a conversation the worker watches. */
export interface ChangeNotice {
  ch: typeof STORE_CHANNEL;
  change: ConversationChange;
}

/** Primary → worker: a typing signal in a conversation the worker watches. */
export interface TypingNotice {
  ch: typeof STORE_CHANNEL;
  typing: TypingSignal;
}

export function isTypingNotice(message: unknown): message is TypingNotice {
  const m = message as TypingNotice | null;
  return (
    typeof m === 'object' && m !== null && m.ch === STORE_CHANNEL && typeof m.typing === 'object'
  );
}

export function isWatchRequest(message: unknown): message is WatchRequest {
  const m = message as WatchRequest | null;
  return (
    typeof m === 'object' &&
    m !== null &&
    m.ch === STORE_CHANNEL &&
    (typeof m.watch === 'string' || typeof m.unwatch === 'string' || typeof m.inbox === 'boolean')
  );
}

export function isChangeNotice(message: unknown): message is ChangeNotice {
  const m = message as ChangeNotice | null;
  return (
    typeof m === 'object' && m !== null && m.ch === STORE_CHANNEL && typeof m.change === 'object'
  );
}

/** Characters of history pieces per IPC message at most (one piece may be larger). */
export const PART_CHARS = 32 * 1024;

export function isRequestBatch(message: unknown): message is StoreRequestBatch {
  return (
    typeof message === 'object' &&
    message !== null &&
    (message as StoreRequestBatch).ch === STORE_CHANNEL &&
    Array.isArray((message as StoreRequestBatch).calls)
  );
}

export function isReplyPart(message: unknown): message is StoreReplyPart {
  return (
    typeof message === 'object' &&
    message !== null &&
    (message as StoreReplyPart).ch === STORE_CHANNEL &&
    typeof (message as StoreReplyPart).part === 'object'
  );
}

export function isReplyBatch(message: unknown): message is StoreReplyBatch {
  return (
    typeof message === 'object' &&
    message !== null &&
    (message as StoreReplyBatch).ch === STORE_CHANNEL &&
    Array.isArray((message as StoreReplyBatch).replies)
  );
}
