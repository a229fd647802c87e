import { ConversationRepository } from '../../src/conversations/conversation.repository';
import { StoreError } from '../../src/common/errors/store-error';
import { InMemoryConversationRepository } from '../../src/conversations/repositories/memory/in-memory-conversation.repository';

/** An in-memory store whose stats() (the readiness probe's call) behaves as told. */
export class StoreWithStats extends InMemoryConversationRepository {
  constructor(private readonly behaviour: 'hang' | 'fail') {
    super();
  }

  override stats(): ReturnType<ConversationRepository['stats']> {
    return this.behaviour === 'hang'
      ? new Promise(() => undefined)
      : Promise.reject(new StoreError('store_unavailable'));
  }
}

/** The value of one series in Prometheus text, summed over every line that matches. */
export function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  return text
    .split('\n')
    .filter((line) => line.startsWith(`${name}{`) || line.startsWith(`${name} `))
    .filter((line) => Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`)))
    .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(' ') + 1)), 0);
}
