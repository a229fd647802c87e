import { StoreError } from '../../../common/errors/store-error';
import { RedisStoreConnection, ScriptedRedis } from './redis-connection';

/** A write's answer, and the replication_timeout to throw when its WAIT fell short. */
export interface Acknowledged<T> {
  result: T;
  unconfirmed: StoreError | null;
}

/**
 * Writes acknowledged once REDIS_WAIT_REPLICAS replicas have them. With replicas to wait
 * for, the script and a WAIT leave together in one pipeline, to the conversation's node (the
 * same connection, right after the write): the answer comes once that many replicas have
 * the write, or fails with replication_timeout, and then the write may stand: a retry with
 * the same Idempotency-Key is safe.
 */
export class AcknowledgedWrites {
  /**
   * @param waitReplicas replicas that must have a write (REDIS_WAIT_REPLICAS; 0: none)
   * @param waitTimeoutMs how long a write waits for them (REDIS_WAIT_TIMEOUT_MS)
   */
  constructor(
    private readonly connection: RedisStoreConnection,
    private readonly waitReplicas: number,
    private readonly waitTimeoutMs: number,
  ) {}

  /** Runs a write's script; a WAIT that fell short throws replication_timeout. */
  write<T>(script: (commands: ScriptedRedis) => Promise<T>): Promise<T> {
    if (this.waitReplicas === 0) {
      return this.connection.run(() => script(this.connection.commands));
    }
    return this.acknowledged(script).then(({ result, unconfirmed }) => {
      if (unconfirmed) {
        throw unconfirmed;
      }
      return result;
    });
  }

  /**
   * As write, but a WAIT that fell short does not hide the script's answer: it comes with the
   * replication_timeout to throw, for a caller that must act on the outcome first.
   */
  acknowledged<T>(script: (commands: ScriptedRedis) => Promise<T>): Promise<Acknowledged<T>> {
    const { connection } = this;
    if (this.waitReplicas === 0) {
      return connection
        .run(() => script(connection.commands))
        .then((result) => ({
          result,
          unconfirmed: null,
        }));
    }
    return connection.run(async () => {
      const pipeline = connection.redis.pipeline();
      void script(pipeline as unknown as ScriptedRedis); // queued: a pipeline's command returns it
      pipeline.wait(this.waitReplicas, this.waitTimeoutMs);
      const [[scriptError, result], [waitError, replicas]] = (await pipeline.exec()) ?? [
        [new Error('no answer'), null],
        [null, 0],
      ];
      if (scriptError || waitError) {
        throw scriptError ?? waitError;
      }
      const unconfirmed =
        Number(replicas) < this.waitReplicas
          ? new StoreError(
              'replication_timeout',
              `Redis at ${connection.where}: ${String(replicas)} of ${this.waitReplicas} replica(s) confirmed the write within ${this.waitTimeoutMs} ms`,
            )
          : null;
      return { result: result as T, unconfirmed };
    });
  }
}
