import { Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { CronJob } from 'cron';
import { performance } from 'node:perf_hooks';
import { EvictionSettings } from '../config/app.settings';
import { Clock } from '../common/time/clock';
import { ConversationRepository } from '../conversations/conversation.repository';
import { MetricsService } from '../observability/metrics.service';

/**
 * Removes conversations inactive for longer than CONVERSATION_TTL_MS, on the EVICTION_CRON
 * schedule. Registered only in the process that owns the store, so it runs once per tick.
 */
@Injectable()
export class EvictionService implements OnApplicationBootstrap {
  static readonly JOB_NAME = 'evict-inactive-conversations';
  private readonly logger = new Logger(EvictionService.name);
  private inProgress: Promise<number> | null = null;
  private totalEvicted = 0;

  constructor(
    private readonly repository: ConversationRepository,
    private readonly clock: Clock,
    private readonly scheduler: SchedulerRegistry,
    private readonly metrics: MetricsService,
    private readonly settings: EvictionSettings,
  ) {}

  onApplicationBootstrap(): void {
    const job = CronJob.from({
      cronTime: this.settings.cron,
      onTick: () => void this.sweep(),
      start: true,
    });
    // Registered so that ScheduleModule stops it on shutdown.
    this.scheduler.addCronJob(EvictionService.JOB_NAME, job);
  }

  /** Runs one sweep. A trigger while one is running joins it instead of starting another. */
  sweep(): Promise<number> {
    this.inProgress ??= this.runSweep().finally(() => {
      this.inProgress = null;
    });
    return this.inProgress;
  }

  /** Conversations evicted since start. */
  get evictedTotal(): number {
    return this.totalEvicted;
  }

  private async runSweep(): Promise<number> {
    const started = performance.now();
    try {
      const evicted = await this.repository.evictInactive(
        this.clock.now() - this.settings.conversationTtlMs,
      );
      this.totalEvicted += evicted;
      this.metrics.countEvicted(evicted);
      this.logger.log(
        `Eviction sweep removed ${evicted} inactive conversation(s) in ${Math.round(performance.now() - started)} ms`,
      );
      return evicted;
    } catch (error) {
      this.logger.error('Eviction sweep failed', error instanceof Error ? error.stack : error);
      return 0;
    }
  }
}
