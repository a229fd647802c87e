import { ConversationChange } from '../conversation.repository';

type Listener = (change: ConversationChange) => void;

/** Who watches which conversation, in one process. */
export class Watchers {
  private readonly byConversation = new Map<string, Set<Listener>>();

  /**
   * Adds a listener; `onFirst` runs when the conversation had none, `onLast` when the returned
   * stop function removes its last one (to subscribe and unsubscribe upstream).
   */
  add(
    conversationId: string,
    listener: Listener,
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
    const listeners = this.byConversation.get(change.conversationId);
    if (!listeners) {
      return;
    }
    for (const listener of [...listeners]) {
      try {
        listener(change);
      } catch {
        // One broken listener (a closed stream) must not keep the change from the others.
      }
    }
  }
}
