import {
  ArgumentsHost,
  Catch,
  Controller,
  ExceptionFilter,
  Get,
  ServiceUnavailableException,
  UseFilters,
} from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { SkipThrottle } from '@nestjs/throttler';
import { HealthCheck, HealthCheckResult, HealthCheckService } from '@nestjs/terminus';
import type { Response } from 'express';
import { Access } from '../access/access.decorator';
import { StoreHealthIndicator } from './store.health';

/**
 * A failed check leaves as Terminus's report (`status: "error"` and which check failed, with
 * why), not as problem+json: probes and dashboards read that shape.
 */
@Catch(ServiceUnavailableException)
class HealthReportFilter implements ExceptionFilter {
  catch(exception: ServiceUnavailableException, host: ArgumentsHost): void {
    host.switchToHttp().getResponse<Response>().status(503).json(exception.getResponse());
  }
}

@ApiTags('operations')
@Controller('health')
@UseFilters(HealthReportFilter)
// Probes need no credential and are never rate limited.
@Access('public')
@SkipThrottle()
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly store: StoreHealthIndicator,
  ) {}

  @Get('live')
  @HealthCheck()
  @ApiOperation({ summary: 'Liveness: the process answers HTTP', security: [] })
  live(): HealthCheckResult {
    // Not through HealthCheckService: it answers 503 shutting_down once the app begins to
    // close, and a process that still answers HTTP is alive until it exits.
    return { status: 'ok', info: {}, error: {}, details: {} };
  }

  @Get('ready')
  @HealthCheck()
  @ApiOperation({
    summary: 'Readiness: the store answers within HEALTH_TIMEOUT_MS',
    security: [],
    description:
      '503 names the failed check: `store`, with its kind (`in-memory`, `cluster-primary`) and why.',
  })
  ready(): Promise<HealthCheckResult> {
    return this.health.check([() => this.store.check()]);
  }
}
