import { StoreError, StoreErrorCode } from '../../../common/errors/store-error';

/**
 * What the Lua scripts answer besides their data: one number per meaning, the same in every
 * script. A script names them as locals in upper snake case (ConversationNotFound is
 * CONVERSATION_NOT_FOUND), which the loader puts where the script says `--@include "codes"`
 * (see redis-scripts.ts). Refusals are turned into StoreErrors by refuse(), in one place; the
 * other codes are outcomes the store acts on.
 */
export enum ScriptCode {
  /** Done, with nothing more to tell: a place taken (reserve), made (create), sent (typing). */
  Done = 0,
  /**
   * Refusal: no such conversation (append, delete, read, typing; evict: nothing to evict;
   * create without a capacity place: no earlier attempt made it).
   */
  ConversationNotFound = -1,
  /** Refusal: the conversation holds its maximum of messages (append). */
  ConversationFull = -2,
  /** Refusal: no such message in the conversation (delete). */
  MessageNotFound = -3,
  /** Refusal: an Idempotency-Key used before with another request (create, append). */
  KeyReused = -4,
  /** Refusal: a read receipt beyond the conversation's last seq (read). */
  SeqBeyondLast = -5,
  /** Evict: active since the cutoff, so it stays; its last activity comes with the code. */
  StillActive = -6,
  /** Reserve: the store holds its maximum of conversations; no place was taken. */
  AtCapacity = -7,
  /** Create: the conversation exists (a retry of the keyed create that made it). */
  Exists = -8,
  /** Read: the horizon was there already; nothing changed. */
  Unchanged = -9,
  /** Update: the record changed since it was read (its state seq or life); read again. */
  Stale = -10,
}

const REFUSALS = new Map<number, StoreErrorCode>([
  [ScriptCode.ConversationNotFound, 'conversation_not_found'],
  [ScriptCode.ConversationFull, 'conversation_full'],
  [ScriptCode.MessageNotFound, 'message_not_found'],
  [ScriptCode.KeyReused, 'idempotency_key_reused'],
  [ScriptCode.SeqBeyondLast, 'seq_beyond_last'],
]);

/** Throws the StoreError a script's refusal stands for; any other answer passes. */
export function refuse(result: number): void {
  const code = REFUSALS.get(result);
  if (code !== undefined) {
    throw new StoreError(code);
  }
}

/** The codes as Lua locals, for the scripts' `--@include "codes"`. */
export function scriptCodesLua(): string {
  return Object.entries(ScriptCode)
    .filter((entry): entry is [string, number] => typeof entry[1] === 'number')
    .map(
      ([name, value]) => `local ${name.replace(/(?<!^)([A-Z])/g, '_$1').toUpperCase()} = ${value}`,
    )
    .join('\n');
}
