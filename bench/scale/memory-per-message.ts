import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { loadInMemoryRepository } from '../lib/server-modules';
import { fail, report, settledHeapUsed } from './heap';

/**
 * Heap bytes per stored message in the real InMemoryConversationRepository (from dist/):
 *
 *   node --expose-gc memory-per-message.js messages <idStyle> <conversations> <perConversation>
 *
 * Messages are spread round-robin over the conversations, as traffic would. Each new message
 * reaches the repository the way it does in the server, by `idStyle`:
 * - `single`: WORKERS=0. The service passes the parsed HTTP body's strings and an id fresh
 *   from crypto.randomUUID() (which V8 holds as a tree of concatenated pieces).
 * - `cluster`: the primary. The whole call arrives as JSON over IPC, so every string in it
 *   (id, content) is a fresh flat string.
 * The heap delta after GC includes everything the store keeps: records, arrays, strings.
 * Beside it, what the store's byte budget (MAX_STORE_BYTES) counts for the same messages:
 * the two must agree for the budget to bound the heap honestly.
 *
 *   node --expose-gc memory-per-message.js text <count>
 *
 * measures what one such 100-character text costs on its own (to check the assumption the
 * runner subtracts).
 */

const TEXT_LENGTH = 100;
const FILLER = 'x'.repeat(TEXT_LENGTH);
const MAX = Number.MAX_SAFE_INTEGER;

function body(n: number): string {
  const content = `${n} ${FILLER}`.slice(0, TEXT_LENGTH);
  return `{"sender":"${n % 2 === 0 ? 'customer' : 'agent'}","content":"${content}"}`;
}

type Input = Parameters<
  InstanceType<Awaited<ReturnType<typeof loadInMemoryRepository>>>['appendMessage']
>[1];

const INPUTS: Record<string, (n: number) => Input> = {
  single: (n) => {
    const dto = JSON.parse(body(n)) as { sender: string; content: string };
    const now = Date.now();
    return {
      id: randomUUID(),
      sender: dto.sender,
      content: dto.content,
      timestamp: now,
      now,
      maxMessages: MAX,
    };
  },
  cluster: (n) => {
    const dto = JSON.parse(body(n)) as { sender: string; content: string };
    const now = Date.now();
    const call = { id: randomUUID(), ...dto, timestamp: now, now, maxMessages: MAX };
    return JSON.parse(JSON.stringify(call)) as Input;
  },
};

async function messages(idStyle: string, conversations: number, perConversation: number) {
  const input = INPUTS[idStyle];
  if (!input) {
    throw new Error(`unknown id style ${idStyle}`);
  }
  const Repository = await loadInMemoryRepository();
  const started = performance.now();
  const before = settledHeapUsed();
  const repository = new Repository();
  const ids: string[] = [];
  for (let i = 0; i < conversations; i++) {
    const id = input(i).id;
    await repository.createConversation({ id, now: Date.now(), maxConversations: MAX });
    ids.push(id);
  }
  let n = 0;
  for (let round = 0; round < perConversation; round++) {
    for (const conversationId of ids) {
      await repository.appendMessage(conversationId, input(n++));
    }
  }
  const after = settledHeapUsed();
  // Every append resolved (a refused one would have thrown); the store must still be whole.
  if ((await repository.stats()).conversations !== conversations) {
    throw new Error('conversations went missing');
  }
  return {
    idStyle,
    conversations,
    messages: n,
    heapBeforeBytes: before,
    heapAfterBytes: after,
    bytesPerMessage: (after - before) / n,
    budgetBytesPerMessage: repository.bytes / n,
    seconds: (performance.now() - started) / 1000,
  };
}

function texts(count: number) {
  const kept: unknown[] = new Array<unknown>(count).fill(null);
  const before = settledHeapUsed();
  for (let i = 0; i < count; i++) {
    kept[i] = (JSON.parse(body(i)) as { content: string }).content;
  }
  const after = settledHeapUsed();
  if (kept.length !== count) {
    throw new Error('lost texts');
  }
  return { count, bytesPerText: (after - before) / count };
}

async function main() {
  const [mode, ...args] = process.argv.slice(2);
  if (mode === 'text') {
    report(texts(Number(args[0])));
  } else {
    report(await messages(args[0], Number(args[1]), Number(args[2])));
  }
}

main().catch(fail);
