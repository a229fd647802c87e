import type { Redis } from 'ioredis';

type Callback = (error: Error | null, result?: unknown) => void;
type Chainable = Record<string, (...args: unknown[]) => unknown>;

/**
 * The client's commands (its scripts included), except that every command issued during one
 * turn of the event loop leaves with the others as one pipeline, sent once the turn's I/O
 * callbacks have run (setImmediate). Under load one socket write and one read then serve
 * many requests, as the cluster's IPC batches do, where ioredis's own auto-pipelining sends a
 * write per request (it flushes on process.nextTick, right after each request's callback).
 * Each command still settles on its own, with its own result or error.
 */
export function batchedCommands<Commands extends object>(redis: Redis): Commands {
  let pipeline: Chainable | null = null;
  const current = (): Chainable => {
    if (!pipeline) {
      const batch = redis.pipeline();
      pipeline = batch as unknown as Chainable;
      setImmediate(() => {
        pipeline = null;
        // Each command's callback gets its own error: nothing to do with the batch's.
        batch.exec().catch(() => undefined);
      });
    }
    return pipeline;
  };
  return new Proxy({} as Commands, {
    get:
      (_target, name: string) =>
      (...args: unknown[]) =>
        new Promise((resolve, reject) => {
          const done: Callback = (error, result) => (error ? reject(error) : resolve(result));
          current()[name](...args, done);
        }),
  });
}
