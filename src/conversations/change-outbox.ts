/**
 * Where a store tells the changes it applies to those who send them on (the webhooks). The
 * store that applies a change calls `changed` before it answers: the in-memory store in the
 * same synchronous step, the Redis store after its script, awaiting what the sink returns (so
 * the answer waits for the outbox write). The sink is attached at start by whoever sends the
 * changes on; until then, and in a process that applies no changes (a cluster worker on the
 * in-memory store), nothing is told.
 */

/**
 * A change as a store applied it: `data` is the JSON text the conversation's event stream
 * sends for it (conversation.created: the new conversation's summary).
 */
export interface TappedChange {
  conversationId: string;
  /** The conversation's life (HistoryVersion.life): a conversation re-made under its id differs. */
  life: number;
  /** 0 for conversation.created (which takes no seq). */
  seq: number;
  type:
    | 'conversation.created'
    | 'message.created'
    | 'message.deleted'
    | 'conversation.read'
    | 'conversation.updated';
  data: string;
  /** When it was applied (ms). */
  at: number;
}

/** A conversation the sweeper evicted, with what its events carry. */
export interface EvictedConversation {
  conversationId: string;
  life: number;
  lastSeq: number;
  /** Its summary (the fields GET answers besides the messages), as JSON text. */
  summary: string;
  /** Its standing messages as stored JSON texts, ascending seq (for the transcript). */
  messagesJson: string[];
  at: number;
}

export interface ChangeSink {
  changed(changes: TappedChange[]): void | Promise<void>;
  /** Before the conversations' records are gone (memory) or right after the sweep (Redis). */
  evicted(conversations: EvictedConversation[]): void | Promise<void>;
  /** Whether an eviction's transcript is wanted (some endpoint takes it): else not read. */
  wantsTranscripts(): boolean;
  /**
   * Whether a change may be wanted at all (absent: always). The in-memory webhook store,
   * which applies changes where it learns of endpoints, says no while it has none, and the
   * store then builds nothing; a store shared by instances cannot know, and always listens.
   */
  listening?(): boolean;
}

export class ChangeOutbox implements ChangeSink {
  private sink: ChangeSink | null = null;

  attach(sink: ChangeSink): void {
    this.sink = sink;
  }

  /** The sink attached, as the class it must be (a store's own wiring asks). */
  sinkAs<T extends ChangeSink>(kind: abstract new (...args: never[]) => T): T {
    if (!(this.sink instanceof kind)) {
      throw new Error(`the outbox's sink is not a ${kind.name}`);
    }
    return this.sink;
  }

  /** Whether a sink listens: a store builds no TappedChange when none does. */
  get active(): boolean {
    return this.sink !== null && (this.sink.listening?.() ?? true);
  }

  changed(changes: TappedChange[]): void | Promise<void> {
    return this.sink?.changed(changes);
  }

  evicted(conversations: EvictedConversation[]): void | Promise<void> {
    return this.sink?.evicted(conversations);
  }

  wantsTranscripts(): boolean {
    return this.sink?.wantsTranscripts() ?? false;
  }
}
