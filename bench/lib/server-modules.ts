import { serverModule } from './paths';

/**
 * The built server's modules the scale checks and the hub benchmark use, loaded from dist/ at
 * run time (never compiled into the bench). The types are the few members used here.
 */

export interface Repository {
  createConversation(input: {
    id: string;
    now: number;
    maxConversations: number;
  }): Promise<{ id: string }>;
  /** The history's shape is the server's business: only null-or-not is relied on here. */
  getConversation(conversationId: string): Promise<unknown>;
  appendMessage(
    conversationId: string,
    input: {
      id: string;
      sender: string;
      content: string;
      timestamp: number;
      now: number;
      maxMessages: number;
    },
  ): Promise<{ seq: number }>;
  evictInactive(cutoff: number): Promise<number>;
  stats(): Promise<{ conversations: number; messages: number }>;
}

export interface ReplyBatch {
  replies: unknown[];
}

export interface StoreHub {
  handle(message: unknown, reply: (batch: ReplyBatch) => void): boolean;
}

export interface MessagePort {
  send(message: unknown): void;
  onMessage(listener: (message: unknown) => void): () => void;
  onClose(listener: () => void): () => void;
}

interface InMemoryModule {
  /** `bytes`: what its byte budget (MAX_STORE_BYTES) counts of what it holds. */
  InMemoryConversationRepository: new () => Repository & { readonly bytes: number };
}

interface IpcModule {
  IpcConversationRepository: new (port: MessagePort, timeoutMs: number) => Repository;
}

interface MessagePortModule {
  processPort(): MessagePort;
}

interface StoreHubModule {
  StoreHub: new (repository: Repository) => StoreHub;
}

export interface SupervisorOptions<W> {
  workers: number;
  graceMs: number;
  onMessage(worker: W, message: unknown): void;
  onCrashLoop(reason: string): void;
}

export interface WorkerSupervisor {
  start(): void;
  stop(): Promise<void>;
}

interface SupervisorModule {
  WorkerSupervisor: new <W>(options: SupervisorOptions<W>) => WorkerSupervisor;
  sendToWorker(worker: unknown, message: unknown): void;
}

interface ControlModule {
  isShutdownMessage(message: unknown): boolean;
}

const load = async <T>(relative: string): Promise<T> => (await import(serverModule(relative))) as T;

export const loadInMemoryRepository = async () =>
  (
    await load<InMemoryModule>(
      'conversations/repositories/memory/in-memory-conversation.repository.js',
    )
  ).InMemoryConversationRepository;

export const loadIpcRepository = async () => ({
  ...(await load<IpcModule>('conversations/repositories/ipc/ipc-conversation.repository.js')),
  ...(await load<MessagePortModule>('cluster/message-port.js')),
});

export const loadStoreHub = async () =>
  (await load<StoreHubModule>('cluster/store-hub.js')).StoreHub;

export const loadSupervisor = () => load<SupervisorModule>('cluster/worker-supervisor.js');

export const loadIsShutdownMessage = async () =>
  (await load<ControlModule>('cluster/control.js')).isShutdownMessage;
