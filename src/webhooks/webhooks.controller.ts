import {
  Body,
  Controller,
  Delete,
  Get,
  HttpCode,
  HttpStatus,
  Param,
  Patch,
  Post,
  Query,
  Res,
} from '@nestjs/common';
import {
  ApiAcceptedResponse,
  ApiBody,
  ApiCreatedResponse,
  ApiOkResponse,
  ApiOperation,
  ApiQuery,
  ApiTags,
} from '@nestjs/swagger';
import type { Response } from 'express';
import { Access } from '../access/access.decorator';
import { ApiGuarded, ApiJsonBody, ApiProblem } from '../common/errors/api-problem.decorator';
import { ValidationFailedException } from '../common/errors/problem.catalogue';
import { EmptyBodyPipe } from '../common/validation/empty-body.pipe';
import {
  CreatedWebhookDto,
  CreateWebhookDto,
  DeletedWebhookDto,
  DeliveryPageDto,
  QueuedDeliveryDto,
  RecoverDto,
  RecoveredDto,
  RotatedSecretDto,
  UpdateWebhookDto,
  WebhookEndpointDto,
  WebhookListDto,
} from './dto/webhook.dto';
import { DELIVERY_LIMIT_DEFAULT, DELIVERY_LIMIT_MAX, WebhooksService } from './webhooks.service';

const ENDPOINT_PROBLEMS = [
  ApiProblem('forbidden', 'forbidden: a customer token'),
  ApiProblem('api_keys_required'),
  ApiProblem('store_unavailable', 'store_unavailable. See Retry-After'),
];

/** An endpoint route's problems: those of every route, and webhook_not_found. */
const ApiEndpoint = (): MethodDecorator => (target, key, descriptor) => {
  for (const decorate of [...ENDPOINT_PROBLEMS, ApiProblem('webhook_not_found')]) {
    decorate(target, key, descriptor);
  }
};

const ApiWebhooks = (): MethodDecorator => (target, key, descriptor) => {
  for (const decorate of ENDPOINT_PROBLEMS) {
    decorate(target, key, descriptor);
  }
};

/**
 * Webhook endpoints, their secrets and their delivery logs. API keys only: without API_KEYS
 * every route answers 403 api_keys_required (an open server must not send requests to
 * addresses anyone gives it), and a customer token gets 403 forbidden.
 */
@ApiTags('webhooks')
@ApiGuarded()
@Access('api-key-required')
@Controller('api/webhooks')
export class WebhooksController {
  constructor(private readonly webhooks: WebhooksService) {}

  @Post()
  @ApiOperation({
    summary: 'Add a webhook endpoint',
    description:
      'It receives every change acknowledged after this answer that its `events` take, signed with ' +
      'Standard Webhooks headers. The answer holds its `secret`, shown only here and on rotation. ' +
      'See docs/webhooks.md.',
  })
  @ApiBody({ type: CreateWebhookDto })
  @ApiCreatedResponse({ type: CreatedWebhookDto, description: 'Location: /api/webhooks/{id}' })
  @ApiJsonBody('validation_failed (see errors: url, events[i], description) or malformed_json')
  @ApiProblem('webhook_limit_reached')
  @ApiWebhooks()
  async create(
    @Body() dto: CreateWebhookDto,
    @Res({ passthrough: true }) res: Response,
  ): Promise<CreatedWebhookDto> {
    const { endpoint, secret } = await this.webhooks.create(dto);
    res.setHeader('Location', `/api/webhooks/${endpoint.id}`);
    return { ...endpoint, secret };
  }

  @Get()
  @ApiOperation({ summary: 'List the webhook endpoints (oldest first)' })
  @ApiOkResponse({ type: WebhookListDto })
  @ApiWebhooks()
  async list(): Promise<WebhookListDto> {
    return { webhooks: await this.webhooks.list() };
  }

  @Get(':webhookId')
  @ApiOperation({ summary: 'Read a webhook endpoint (without its secret)' })
  @ApiOkResponse({ type: WebhookEndpointDto })
  @ApiEndpoint()
  get(@Param('webhookId') id: string): Promise<WebhookEndpointDto> {
    return this.webhooks.get(id);
  }

  @Patch(':webhookId')
  @ApiOperation({
    summary: 'Change a webhook endpoint',
    description:
      'Absent fields stay. `enabled: false` stops queueing for it at once; `enabled: true` starts ' +
      'again (changes made while it was disabled are not sent: use recover for failed ones).',
  })
  @ApiBody({ type: UpdateWebhookDto })
  @ApiOkResponse({ type: WebhookEndpointDto })
  @ApiJsonBody(
    'validation_failed (see errors: url, events[i], description, enabled) or malformed_json',
  )
  @ApiEndpoint()
  update(
    @Param('webhookId') id: string,
    @Body() dto: UpdateWebhookDto,
  ): Promise<WebhookEndpointDto> {
    return this.webhooks.update(id, dto);
  }

  @Delete(':webhookId')
  @ApiOperation({ summary: 'Remove a webhook endpoint, its queue and its log' })
  @ApiOkResponse({ type: DeletedWebhookDto })
  @ApiEndpoint()
  async delete(@Param('webhookId') id: string): Promise<DeletedWebhookDto> {
    await this.webhooks.delete(id);
    return { success: true, webhookId: id };
  }

  @Post(':webhookId/rotate-secret')
  @HttpCode(HttpStatus.OK)
  @ApiOperation({
    summary: 'Give a webhook endpoint a new secret',
    description:
      'The previous secret keeps signing beside the new one for 24 h (one `v1,` signature each in ' +
      '`webhook-signature`); at most 5 previous secrets sign at once.',
  })
  @ApiOkResponse({ type: RotatedSecretDto })
  @ApiProblem('rotation_limit_reached')
  @ApiProblem('validation_failed', 'validation_failed: a body with fields')
  @ApiEndpoint()
  rotate(
    @Param('webhookId') id: string,
    @Body(EmptyBodyPipe) _body: unknown,
  ): Promise<RotatedSecretDto> {
    return this.webhooks.rotate(id);
  }

  @Post(':webhookId/test')
  @HttpCode(HttpStatus.ACCEPTED)
  @ApiOperation({
    summary: 'Send a webhook.test event to this endpoint',
    description:
      'Queued as any event is (sent once the endpoint is enabled); see the log for how it went.',
  })
  @ApiAcceptedResponse({ type: QueuedDeliveryDto })
  @ApiProblem('validation_failed', 'validation_failed: a body with fields')
  @ApiEndpoint()
  test(
    @Param('webhookId') id: string,
    @Body(EmptyBodyPipe) _body: unknown,
  ): Promise<QueuedDeliveryDto> {
    return this.webhooks.test(id);
  }

  @Get(':webhookId/deliveries')
  @ApiOperation({
    summary: "A webhook endpoint's delivery log",
    description:
      'Newest first, within WEBHOOK_RETENTION_MS and the last WEBHOOK_LOG_LIMIT finished: each ' +
      'delivery with the time, status code, duration and error of each attempt.',
  })
  @ApiQuery({ name: 'status', required: false, enum: ['pending', 'succeeded', 'failed'] })
  @ApiQuery({
    name: 'limit',
    required: false,
    type: 'integer',
    description: `1 to ${DELIVERY_LIMIT_MAX}; default ${DELIVERY_LIMIT_DEFAULT}.`,
  })
  @ApiQuery({ name: 'cursor', required: false })
  @ApiOkResponse({ type: DeliveryPageDto })
  @ApiProblem('validation_failed', 'validation_failed: a bad status, limit or cursor')
  @ApiEndpoint()
  deliveries(
    @Param('webhookId') id: string,
    @Query() query: Record<string, unknown>,
  ): Promise<DeliveryPageDto> {
    return this.webhooks.deliveries(id, query);
  }

  @Post(':webhookId/deliveries/:deliveryId/retry')
  @HttpCode(HttpStatus.ACCEPTED)
  @ApiOperation({
    summary: 'Send a logged delivery again',
    description:
      'A finished delivery is queued again with a fresh schedule, under the same webhook-id and body; a pending one waiting for its next attempt is sent at once (its schedule goes on).',
  })
  @ApiAcceptedResponse({ type: QueuedDeliveryDto })
  @ApiProblem('webhook_delivery_not_found')
  @ApiProblem('validation_failed', 'validation_failed: a body with fields')
  @ApiEndpoint()
  async retry(
    @Param('webhookId') id: string,
    @Param('deliveryId') deliveryId: string,
    @Body(EmptyBodyPipe) _body: unknown,
  ): Promise<QueuedDeliveryDto> {
    await this.webhooks.retry(id, deliveryId);
    return { deliveryId };
  }

  @Post(':webhookId/recover')
  @HttpCode(HttpStatus.ACCEPTED)
  @ApiOperation({
    summary: 'Send again every failed delivery since a time',
    description: '`since` at most WEBHOOK_RETENTION_MS ago, else 400.',
  })
  @ApiBody({ type: RecoverDto })
  @ApiAcceptedResponse({ type: RecoveredDto })
  @ApiJsonBody('validation_failed (since) or malformed_json')
  @ApiEndpoint()
  recover(@Param('webhookId') id: string, @Body() body: unknown): Promise<RecoveredDto> {
    if (!body || typeof body !== 'object' || Array.isArray(body)) {
      throw new ValidationFailedException([
        { field: '(body)', message: 'the body must be a JSON object with since' },
      ]);
    }
    return this.webhooks.recover(id, body as Record<string, unknown>);
  }
}
