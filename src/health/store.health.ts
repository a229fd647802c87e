import { Injectable } from '@nestjs/common';
import { HealthIndicatorResult, HealthIndicatorService } from '@nestjs/terminus';
import { withTimeout } from '../common/time/with-timeout';
import { ObservabilitySettings } from '../config/app.settings';
import { ConversationRepository } from '../conversations/conversation.repository';

/** Up when the store answers within HEALTH_TIMEOUT_MS; down, saying why, when it does not. */
@Injectable()
export class StoreHealthIndicator {
  constructor(
    private readonly repository: ConversationRepository,
    private readonly indicators: HealthIndicatorService,
    private readonly settings: ObservabilitySettings,
  ) {}

  async check(key = 'store'): Promise<HealthIndicatorResult> {
    const indicator = this.indicators.check(key);
    const kind = this.repository.kind;
    try {
      await withTimeout(this.repository.stats(), this.settings.healthTimeoutMs);
      return indicator.up({ kind });
    } catch (error) {
      return indicator.down({
        kind,
        message: error instanceof Error ? error.message : String(error),
      });
    }
  }
}
