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
