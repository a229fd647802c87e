/** How long a `typing: true` from one sender in one conversation absorbs its renewals. */
export const TYPING_COALESCE_MS = 1_000;

/**
 * Lets at most one `typing: true` a second through per conversation and sender, in this
 * process: clients renew on every keystroke, and each renewal would otherwise reach every
 * subscriber on every worker and instance. Two maps that take turns, each a second's worth,
 * so what it holds is bounded by the last two seconds of traffic with no sweep.
 */
export class TypingGate {
  private current = new Map<string, number>();
  private previous = new Map<string, number>();
  private turnedAt = 0;

  /** True when a signal for `key` may go out at `now` (it is then counted). */
  admit(key: string, now: number): boolean {
    if (now - this.turnedAt >= TYPING_COALESCE_MS) {
      this.previous = this.current;
      this.current = new Map();
      this.turnedAt = now;
    }
    const sentAt = this.current.get(key) ?? this.previous.get(key);
    if (sentAt !== undefined && now - sentAt < TYPING_COALESCE_MS) {
      return false;
    }
    this.current.set(key, now);
    return true;
  }

  /** The next signal for `key` goes out (it stopped typing, or the last one failed). */
  forget(key: string): void {
    this.current.delete(key);
    this.previous.delete(key);
  }
}
