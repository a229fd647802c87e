import { Controller, Get, Header, HttpStatus } from '@nestjs/common';
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
import { ProblemException } from '../common/problem';
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
      throw new ProblemException(HttpStatus.NOT_FOUND, 'not_found', 'No such route.');
    }
    const text = await this.metrics.render();
    if (text === null) {
      throw new ProblemException(
        HttpStatus.SERVICE_UNAVAILABLE,
        'metrics_unavailable',
        'The cluster primary did not answer in time; try again.',
        undefined,
        { 'Retry-After': '1' },
      );
    }
    return text;
  }
}
