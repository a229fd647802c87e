import { Global, Module } from '@nestjs/common';
import { ConversationStoreModule } from '../conversations/conversation-store.module';
import { MetricsController } from './metrics.controller';
import { MetricsService } from './metrics.service';
import { RequestObserver } from './request-observer';
import { StoreGauges } from './store-gauges';

/** Metrics, the request id and the access log; MetricsService is injectable everywhere. */
@Global()
@Module({
  imports: [ConversationStoreModule],
  controllers: [MetricsController],
  providers: [MetricsService, RequestObserver, StoreGauges],
  exports: [MetricsService, RequestObserver],
})
export class ObservabilityModule {}
