import {
  conversationFromSnapshot,
  countersFrom,
  SnapshotLine,
  snapshotLineOf,
} from '../../records/conversation.codec';
import { createdAtOfJson, keptMessageJson, senderOfJson } from '../../records/message.codec';
import { CONVERSATION_OVERHEAD_BYTES, KEPT_POST_BYTES, messageBytes } from './byte-budget';
import {
  ConversationRecord,
  flat,
  IN_HISTORY,
  IN_KEPT_POST,
  MessageRecord,
  memoryRecord,
} from './memory-records';

/**
 * A conversation as a line of a snapshot file (SNAPSHOT_PATH), with its Idempotency-Keys.
 * Its replay buffer is not kept: after a restart a reconnecting stream gets `reset`.
 */
export function snapshotLine(record: ConversationRecord): string {
  return JSON.stringify(
    snapshotLineOf(
      record,
      record.bySeq.map((m) => [m.timestamp, m.seq, m.json]),
      record.postKeys &&
        [...record.postKeys].map(([key, kept]) => [
          key,
          kept.fingerprint,
          kept.expiresAt,
          kept.message.json,
        ]),
    ),
  );
}

/** The conversation a snapshotLine (of this build or an older one) holds. */
export function restoredRecord(line: string): ConversationRecord {
  const saved = JSON.parse(line) as SnapshotLine;
  const bySeq = saved.messages.map(([timestamp, seq, json]): MessageRecord => ({
    timestamp,
    seq,
    json: flat(keptMessageJson(json)),
    holders: IN_HISTORY,
  }));
  const stored = conversationFromSnapshot(saved);
  Object.assign(
    stored,
    countersFrom(
      bySeq.map(({ seq, json }) => ({
        seq,
        sender: senderOfJson(json),
        createdAt: createdAtOfJson(json),
      })),
      { customer: stored.readCustomer, agent: stored.readAgent },
    ),
  );
  const record = memoryRecord(
    stored,
    // Counted, but never refused: a restart loses nothing, and writes wait for room.
    CONVERSATION_OVERHEAD_BYTES +
      bySeq.reduce((sum, message) => sum + messageBytes(message.json), 0),
    bySeq,
    [...bySeq].sort((a, b) => a.timestamp - b.timestamp || a.seq - b.seq),
  );
  if (saved.postKeys) {
    // A key answers with its message's record when the message is still there, else with
    // a record of its own, counted like one.
    const byJson = new Map(bySeq.map((message) => [message.json, message]));
    record.postKeys = new Map(
      saved.postKeys.map(([key, fingerprint, expiresAt, json]) => {
        let message = byJson.get(json);
        if (!message) {
          message = { timestamp: 0, seq: 0, json: flat(keptMessageJson(json)), holders: 0 };
          record.bytes += messageBytes(message.json);
        }
        message.holders |= IN_KEPT_POST;
        record.bytes += KEPT_POST_BYTES;
        return [key, { fingerprint, expiresAt, message }];
      }),
    );
  }
  return record;
}
