import { Injectable, OnModuleInit } from '@nestjs/common';
import cluster from 'node:cluster';
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
  ) {}

  onModuleInit(): void {
    if (!cluster.isWorker) {
      this.metrics.watchStore(() => this.repository.stats());
    }
  }
}
