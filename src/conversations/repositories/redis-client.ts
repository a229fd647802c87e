import { Logger } from '@nestjs/common';
import { Redis } from 'ioredis';
import { withTimeout } from '../../common/with-timeout';

/** The URL without user or password, fit for logs and health reports. */
export function redactRedisUrl(url: string): string {
  const parsed = new URL(url);
  return `${parsed.protocol}//${parsed.host}${parsed.pathname}`;
}

/**
 * Connects to Redis, or fails with an error that says where and why (unless `mustConnect` is
 * false: a cluster worker, started by a primary that has connected, may be replaced while
 * Redis is down and must not crash for it). The client never queues
 * commands while disconnected and never retries them: a request fails at once with
 * store_unavailable instead of hanging, and the client reconnects by itself (every second at
 * most) so that service resumes when Redis is back.
 */
export async function connectRedis(
  url: string,
  commandTimeoutMs: number,
  { mustConnect = true }: { mustConnect?: boolean } = {},
): Promise<Redis> {
  const where = redactRedisUrl(url);
  const logger = new Logger('Redis');
  const redis = new Redis(url, {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: commandTimeoutMs,
    connectTimeout: Math.min(commandTimeoutMs, 5_000),
    // The repository batches per event-loop turn itself (redis-batch.ts).
    enableAutoPipelining: false,
    retryStrategy: (attempt) => Math.min(attempt * 100, 1_000),
  });
  /** An outage was told and has not ended: told once per outage, not once per retry. */
  let down = false;
  /** Connected at least once: failures before that are the start-up's to tell. */
  let started = false;
  let lastError: Error | null = null;
  redis.on('error', (error: Error) => {
    lastError = error;
    if (started && !down) {
      down = true;
      logger.error(`Redis at ${where} is unreachable: ${error.message}. Retrying every second.`);
    }
  });
  redis.on('ready', () => {
    if (down) {
      logger.log(`Redis at ${where} is back`);
    }
    down = false;
    started = true;
  });
  try {
    await withTimeout(
      redis.connect().then(() => redis.ping()),
      Math.min(commandTimeoutMs, 5_000),
    );
  } catch (error) {
    // The socket's own error (ECONNREFUSED, ENOTFOUND...) says more than "Connection is closed".
    const cause = (lastError as Error | null) ?? error;
    const reason = cause instanceof Error ? cause.message : String(cause);
    if (!mustConnect) {
      // Keeps trying in the background (retryStrategy); commands fail fast until it is back.
      logger.warn(`Starting without Redis at ${where}: ${reason}. Retrying every second.`);
      down = true;
      started = true;
      return redis;
    }
    redis.disconnect();
    throw new Error(`Cannot reach Redis at ${where} (REDIS_URL): ${reason}`);
  }
  return redis;
}
