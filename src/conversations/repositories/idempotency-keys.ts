import { KeptResponse, KeyClaim } from '../conversation.repository';

interface Entry {
  fingerprint: string;
  /** Date.now() after which the entry is gone. */
  expiresAt: number;
  response?: KeptResponse;
}

/**
 * Idempotency-Keys in memory: the claims and kept responses of one store. At most `maxKeys`
 * are kept; beyond that the oldest go first (a Map keeps insertion order), so memory stays
 * bounded whatever the request rate.
 */
export class IdempotencyKeys {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly maxKeys = 100_000) {}

  claim(key: string, fingerprint: string, pendingMs: number): KeyClaim {
    const now = Date.now();
    const entry = this.entries.get(key);
    if (entry && entry.expiresAt > now) {
      if (entry.fingerprint !== fingerprint) {
        return { state: 'mismatch' };
      }
      return entry.response ? { state: 'done', response: entry.response } : { state: 'pending' };
    }
    this.entries.delete(key);
    this.entries.set(key, { fingerprint, expiresAt: now + pendingMs });
    while (this.entries.size > this.maxKeys) {
      this.entries.delete(this.entries.keys().next().value as string);
    }
    return { state: 'claimed' };
  }

  complete(key: string, fingerprint: string, response: KeptResponse, ttlMs: number): void {
    const entry = this.entries.get(key);
    if (entry?.fingerprint === fingerprint) {
      entry.response = response;
      entry.expiresAt = Date.now() + ttlMs;
    }
  }

  release(key: string, fingerprint: string): void {
    const entry = this.entries.get(key);
    if (entry?.fingerprint === fingerprint && !entry.response) {
      this.entries.delete(key);
    }
  }
}
