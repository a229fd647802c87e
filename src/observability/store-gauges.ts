import { Inject, Injectable, OnModuleInit } from '@nestjs/common';
import { PROCESS_ROLE, ProcessRole } from '../cluster/process-role';
import { ConversationRepository } from '../conversations/conversation.repository';
import { MetricsService } from './metrics.service';

/**
 * Registers the gauges of what the store holds in the process that owns the store: a single
 * process or the cluster primary, never a worker (whose store is the primary's).
 */
@Injectable()
export class StoreGauges implements OnModuleInit {
  constructor(
    private readonly repository: ConversationRepository,
    private readonly metrics: MetricsService,
    @Inject(PROCESS_ROLE) private readonly role: ProcessRole,
  ) {}

  onModuleInit(): void {
    if (this.role !== 'worker') {
      this.metrics.watchStore(() => this.repository.stats());
    }
  }
}
