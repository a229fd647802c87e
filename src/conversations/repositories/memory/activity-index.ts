import { setImmediate as yieldToEventLoop } from 'node:timers/promises';

/** What the index needs of a stored thing. */
export interface Active {
  readonly id: string;
  /** When it last became idle: its last activity, or later (a snoozed conversation's wake). */
  idleFrom: number;
}

interface Generation<T extends Active> {
  /** Every member's last activity lies in [start, start + span). */
  readonly start: number;
  readonly members: Map<string, T>;
  /** The members' weights summed, each kind apart (see ActivityIndex.weight). */
  readonly weights: number[];
}

/** Adds `change` (times `sign`) into `into`, kind by kind. */
function addWeights(into: number[], change: readonly number[], sign = 1): void {
  for (let i = 0; i < change.length; i++) {
    into[i] = (into[i] ?? 0) + sign * change[i];
  }
}

/** Members visited between two yields to the event loop. */
const EVICTION_CHUNK = 2_000;

/**
 * Things by id, grouped into generations by the time of their last activity (one generation
 * per `span` milliseconds).
 *
 * An eviction sweep drops every generation that ended before the cutoff whole, and walks
 * only the one generation the cutoff falls in. Its cost is what it evicts plus at most one
 * generation, and the evicted members are never looked up one by one in a table the size of
 * the whole store, which at millions of entries costs a cache miss per deletion. A lookup asks the generations newest first: active things are found in the
 * first one or two, and there are about TTL / span generations in all.
 */
export class ActivityIndex<T extends Active> {
  /** Oldest first. */
  private readonly generations: Generation<T>[] = [];
  private total = 0;
  private readonly totalWeights: number[] = [];

  /**
   * @param weigh a member's weights now, one number per kind (a conversation's message count
   *   and bytes), summed per generation so that `weight` is known without visiting members,
   *   even as whole generations are evicted.
   */
  constructor(
    private readonly span: number,
    private readonly weigh: (member: T) => readonly number[] = () => [],
  ) {}

  get size(): number {
    return this.total;
  }

  /** The weights of one kind of all members, summed (0 for a kind no member has). */
  weight(kind = 0): number {
    return this.totalWeights[kind] ?? 0;
  }

  /** Every member, oldest generation first. */
  *members(): IterableIterator<T> {
    for (const generation of this.generations) {
      yield* generation.members.values();
    }
  }

  get(id: string): T | undefined {
    for (let i = this.generations.length - 1; i >= 0; i--) {
      const found = this.generations[i].members.get(id);
      if (found) {
        return found;
      }
    }
    return undefined;
  }

  add(member: T): void {
    const generation = this.generationAt(member.idleFrom);
    const weights = this.weigh(member);
    generation.members.set(member.id, member);
    addWeights(generation.weights, weights);
    this.total++;
    addWeights(this.totalWeights, weights);
  }

  /**
   * Records activity at `time`, moving the member to that time's generation.
   * @param weightChanges how much each of the member's weights changed with this activity (a
   *   message appended: one message and its bytes more), already applied to the member.
   */
  touch(member: T, time: number, weightChanges: readonly number[] = []): void {
    const from = this.generationOf(member);
    if (!from?.members.has(member.id)) {
      return; // evicted already
    }
    member.idleFrom = Math.max(member.idleFrom, time);
    addWeights(this.totalWeights, weightChanges);
    const to = this.generationAt(member.idleFrom);
    if (to === from) {
      // Order within a generation does not matter: a sweep walks all of it.
      addWeights(to.weights, weightChanges);
      return;
    }
    const weights = this.weigh(member);
    // `from` holds the weights as they were before the change.
    addWeights(from.weights, weights, -1);
    addWeights(from.weights, weightChanges);
    addWeights(to.weights, weights);
    from.members.delete(member.id);
    to.members.set(member.id, member);
    if (from.members.size === 0) {
      this.generations.splice(this.generations.indexOf(from), 1);
    }
  }

  /**
   * Removes every member idle from before `cutoff`; returns how many. `onEvicted`, when
   * given, is told of each (a look at every evicted member, which whole generations are
   * otherwise spared).
   */
  async evictBefore(cutoff: number, onEvicted?: (member: T) => void): Promise<number> {
    let evicted = 0;
    while (this.generations.length > 0 && this.generations[0].start + this.span <= cutoff) {
      evicted += this.generations[0].members.size;
      if (onEvicted) {
        this.generations[0].members.forEach(onEvicted);
      }
      addWeights(this.totalWeights, this.generations[0].weights, -1);
      this.generations.shift();
    }
    this.total -= evicted;
    const partial = this.generations[0];
    if (!partial || partial.start >= cutoff) {
      return evicted;
    }
    // The whole generation, not up to its first live member: members can arrive a little out
    // of time order (workers' clocks), and an expired one behind a live one must go too.
    // One iterator across the yields: a Map iterator stays valid while the Map changes.
    let visited = 0;
    for (const member of partial.members.values()) {
      if (member.idleFrom < cutoff) {
        const weights = this.weigh(member);
        partial.members.delete(member.id);
        addWeights(partial.weights, weights, -1);
        addWeights(this.totalWeights, weights, -1);
        this.total--;
        evicted++;
        onEvicted?.(member);
      }
      if (++visited % EVICTION_CHUNK === 0) {
        await yieldToEventLoop();
      }
    }
    if (partial.members.size === 0 && this.generations.includes(partial)) {
      this.generations.splice(this.generations.indexOf(partial), 1);
    }
    return evicted;
  }

  private generationOf(member: T): Generation<T> | undefined {
    const start = this.startOf(member.idleFrom);
    for (let i = this.generations.length - 1; i >= 0; i--) {
      if (this.generations[i].start === start) {
        return this.generations[i];
      }
    }
    return undefined;
  }

  private startOf(time: number): number {
    return Math.floor(time / this.span) * this.span;
  }

  /** The generation for `time`, made if needed; nearly always the newest. */
  private generationAt(time: number): Generation<T> {
    const start = this.startOf(time);
    let i = this.generations.length - 1;
    while (i >= 0 && this.generations[i].start > start) {
      i--;
    }
    if (i >= 0 && this.generations[i].start === start) {
      return this.generations[i];
    }
    const generation: Generation<T> = { start, members: new Map(), weights: [] };
    this.generations.splice(i + 1, 0, generation);
    return generation;
  }
}
