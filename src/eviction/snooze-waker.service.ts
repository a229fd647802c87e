import { Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { Clock } from '../common/time/clock';
import { ConversationRepository } from '../conversations/conversation.repository';

/** How often the store's owner writes the wakes of due snoozes. */
export const WAKE_INTERVAL_MS = 500;

/**
 * Writes the wake of every due snooze as a change, within a second of its time: run where
 * the store is owned, as eviction is (in memory the primary or the single process; on Redis
 * every process asks, and the store lets one at a time do it). Answers read a due snooze as
 * open before this writes it (statusAt).
 */
@Injectable()
export class SnoozeWakerService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(SnoozeWakerService.name);
  private timer: NodeJS.Timeout | undefined;
  private running = false;

  constructor(
    private readonly repository: ConversationRepository,
    private readonly clock: Clock,
  ) {}

  onApplicationBootstrap(): void {
    this.timer = setInterval(() => void this.wake(), WAKE_INTERVAL_MS);
    this.timer.unref();
  }

  onApplicationShutdown(): void {
    clearInterval(this.timer);
  }

  /** One pass; a pass still running makes this one a no-op. How many it woke. */
  async wake(): Promise<number> {
    if (this.running) {
      return 0;
    }
    this.running = true;
    try {
      return await this.repository.wakeSnoozed(this.clock.now());
    } catch (error) {
      this.logger.warn(`Waking snoozed conversations failed: ${String(error)}`);
      return 0;
    } finally {
      this.running = false;
    }
  }
}
