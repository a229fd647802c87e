import { Controller, Get, Header } from '@nestjs/common';
import {
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiBearerAuth,
  ApiOperation,
  ApiProduces,
  ApiServiceUnavailableResponse,
  ApiTags,
} from '@nestjs/swagger';
import { SkipThrottle } from '@nestjs/throttler';
import { Registry } from 'prom-client';
import { problem } from '../common/errors/problem.catalogue';
import { MetricsService } from './metrics.service';

@ApiTags('operations')
@Controller('metrics')
// With API_KEYS set, scrapers send a key (Prometheus: `authorization: { credentials: <key> }`).
@ApiBearerAuth()
@SkipThrottle()
export class MetricsController {
  constructor(private readonly metrics: MetricsService) {}

  @Get()
  @Header('Content-Type', Registry.PROMETHEUS_CONTENT_TYPE)
  @ApiOperation({
    summary: 'Prometheus metrics',
    description:
      'In the Prometheus text format. In cluster mode, summed over the primary and every worker, whichever worker answers. 404 when METRICS_ENABLED=false.',
  })
  @ApiProduces(Registry.PROMETHEUS_CONTENT_TYPE)
  @ApiOkResponse({ description: 'The metrics', schema: { type: 'string' } })
  @ApiNotFoundResponse({ description: 'not_found: METRICS_ENABLED=false' })
  @ApiServiceUnavailableResponse({ description: 'metrics_unavailable: the primary did not answer' })
  async scrape(): Promise<string> {
    if (!this.metrics.enabled) {
      throw problem('not_found');
    }
    const text = await this.metrics.render();
    if (text === null) {
      throw problem('metrics_unavailable');
    }
    return text;
  }
}
