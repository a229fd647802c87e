import { ChangeListener, ConversationChange, TypingSignal } from '../conversation.repository';

/** Who watches which conversation, in one process. */
export class Watchers {
  private readonly byConversation = new Map<string, Set<ChangeListener>>();

  /**
   * Adds a listener; `onFirst` runs when the conversation had none, `onLast` when the returned
   * stop function removes its last one (to subscribe and unsubscribe upstream).
   */
  add(
    conversationId: string,
    listener: ChangeListener,
    onFirst: () => void = () => undefined,
    onLast: () => void = () => undefined,
  ): () => void {
    let listeners = this.byConversation.get(conversationId);
    if (!listeners) {
      listeners = new Set();
      this.byConversation.set(conversationId, listeners);
      onFirst();
    }
    listeners.add(listener);
    return () => {
      const current = this.byConversation.get(conversationId);
      if (current?.delete(listener) && current.size === 0) {
        this.byConversation.delete(conversationId);
        onLast();
      }
    };
  }

  has(conversationId: string): boolean {
    return this.byConversation.has(conversationId);
  }

  /** Every watched conversation. */
  conversations(): string[] {
    return [...this.byConversation.keys()];
  }

  emit(change: ConversationChange): void {
    this.tell(change.conversationId, (listener) => listener.change(change));
  }

  typing(signal: TypingSignal): void {
    this.tell(signal.conversationId, (listener) => listener.typing?.(signal));
  }

  /** Tells the listeners of these conversations (all when none are named) of a gap. */
  gap(conversationIds: string[] = this.conversations()): void {
    for (const conversationId of conversationIds) {
      this.tell(conversationId, (listener) => listener.gap());
    }
  }

  private tell(conversationId: string, call: (listener: ChangeListener) => void): void {
    const listeners = this.byConversation.get(conversationId);
    if (!listeners) {
      return;
    }
    for (const listener of [...listeners]) {
      try {
        call(listener);
      } catch {
        // One broken listener (a closed stream) must not keep the change from the others.
      }
    }
  }
}
