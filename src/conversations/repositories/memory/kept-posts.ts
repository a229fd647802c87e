import { StoreError } from '../../../common/errors/store-error';
import { IdempotentWrite } from '../../conversation.repository';
import { KEPT_POST_BYTES, letGo } from './byte-budget';
import { ConversationRecord, flat, IN_KEPT_POST, KeptPost, MessageRecord } from './memory-records';

/**
 * Keyed posts remembered per conversation at most; past it the oldest key goes first. Ten
 * thousand is the default MAX_MESSAGES_PER_CONVERSATION: only a conversation whose messages
 * are deleted and posted again, all with keys, within the key's lifetime reaches it.
 */
const MAX_POST_KEYS = 10_000;

/** Forgets a kept Idempotency-Key; the bytes the budget gives back. */
function dropKey(keys: Map<string, KeptPost>, key: string, kept: KeptPost): number {
  keys.delete(key);
  return KEPT_POST_BYTES + letGo(kept.message, IN_KEPT_POST);
}

/**
 * Forgets the kept keys that have expired, and the oldest while `below` or more are kept; the
 * bytes the budget gives back.
 */
export function forgetKeys(keys: Map<string, KeptPost>, now: number, below = Infinity): number {
  let freed = 0;
  // Every key lives equally long, so the expired ones are at the front.
  for (const [key, kept] of keys) {
    if (kept.expiresAt > now && keys.size < below) {
      break;
    }
    freed += dropKey(keys, key, kept);
  }
  return freed;
}

/**
 * The kept result of a keyed post, if it is a retry; refuses a key reused for another.
 * twin: src/conversations/repositories/redis/scripts/append-7.lua (keyed-post replay)
 */
export function keptPost(
  record: ConversationRecord,
  keyed: IdempotentWrite,
  now: number,
): KeptPost | undefined {
  const kept = record.postKeys?.get(keyed.key);
  if (!kept || kept.expiresAt <= now) {
    return undefined;
  }
  if (kept.fingerprint !== keyed.fingerprint) {
    throw new StoreError('idempotency_key_reused');
  }
  return kept;
}

/**
 * Keeps a keyed post's result, and lets go of the keys that have expired; the change in
 * the bytes the budget counts for the conversation's keys and what they alone held.
 */
export function keepPost(
  record: ConversationRecord,
  keyed: IdempotentWrite,
  now: number,
  message: MessageRecord,
): number {
  const keys = (record.postKeys ??= new Map());
  let bytes = KEPT_POST_BYTES - forgetKeys(keys, now, MAX_POST_KEYS);
  // An expired entry under the same key: re-inserted at the back.
  const expired = keys.get(keyed.key);
  if (expired) {
    bytes -= dropKey(keys, keyed.key, expired);
  }
  message.holders |= IN_KEPT_POST;
  keys.set(flat(keyed.key), {
    fingerprint: flat(keyed.fingerprint),
    expiresAt: now + keyed.ttlMs,
    message,
  });
  return bytes;
}
