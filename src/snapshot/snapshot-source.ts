/**
 * What a snapshot needs of the store it keeps. The store module provides it only in the
 * process whose store lives in its own memory (a single process or the primary); elsewhere
 * it is null, and there is nothing to keep.
 */
export abstract class SnapshotSource {
  /** The store as lines of JSON, one conversation each. */
  abstract snapshotLines(): Iterable<string>;
  /** Puts back one conversation from a line of snapshotLines(). */
  abstract restore(line: string): void;
}

/**
 * Another store kept in the same file, beside the conversations: the webhooks' endpoints and
 * their pending deliveries (see InMemoryWebhookStore). Its lines are marked as its own, and
 * restore tells them apart from the conversations'.
 */
export abstract class SnapshotPart {
  abstract snapshotLines(): Iterable<string>;
  /** Puts back a line of snapshotLines(); false for a line that is not one of its own. */
  abstract restore(line: string): boolean;
}
