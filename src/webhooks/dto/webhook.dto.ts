import { ApiProperty, ApiPropertyOptional, ApiPropertyOptions } from '@nestjs/swagger';
import { IsArray, IsBoolean, IsString, MaxLength, ValidateIf } from 'class-validator';
import {
  DeliveryStatus,
  DisabledReason,
  WEBHOOK_EVENT_PATTERNS,
  WEBHOOK_EVENT_TYPES,
  WebhookEventType,
} from '../webhook.model';

/** The longest URL an endpoint may have. */
export const WEBHOOK_URL_MAX = 2048;
/** The longest description. */
export const WEBHOOK_DESCRIPTION_MAX = 500;
/** Filter entries an endpoint may list. */
export const WEBHOOK_EVENTS_MAX = 20;

/**
 * Optional, but not nullable: null is refused with the field's type message (IsOptional would
 * let it through to the service, which does not expect it, and to the stored endpoint).
 */
const OptionalNotNull = () => ValidateIf((_dto: unknown, value: unknown) => value !== undefined);

const EP_EXAMPLE = 'ep_5b0c3f9e2f7c4a539d0e0b7d3c1a8e21';
const EVENTS_DOC: ApiPropertyOptions = {
  type: [String],
  example: ['message.created', 'conversation.*'],
  description: `Which events it receives: any of ${WEBHOOK_EVENT_PATTERNS.map((p) => '`' + p + '`').join(', ')}. Empty or absent: every event, including types added later.`,
};

export class CreateWebhookDto {
  @ApiProperty({
    example: 'https://example.com/chat-webhooks',
    description: `http or https, no credentials, at most ${WEBHOOK_URL_MAX} characters.`,
  })
  @IsString({ message: 'url must be a string' })
  url: string;

  @ApiPropertyOptional(EVENTS_DOC)
  @OptionalNotNull()
  @IsArray({ message: 'events must be an array of event types' })
  events?: unknown[];

  @ApiPropertyOptional({ example: 'CRM sync', maxLength: WEBHOOK_DESCRIPTION_MAX })
  @OptionalNotNull()
  // Decorators run bottom-up; with stopAtFirstError the type check must come first.
  @MaxLength(WEBHOOK_DESCRIPTION_MAX, {
    message: `description must be at most ${WEBHOOK_DESCRIPTION_MAX} characters`,
  })
  @IsString({ message: 'description must be a string' })
  description?: string;
}

export class UpdateWebhookDto {
  @ApiPropertyOptional({ example: 'https://example.com/chat-webhooks' })
  @OptionalNotNull()
  @IsString({ message: 'url must be a string' })
  url?: string;

  @ApiPropertyOptional(EVENTS_DOC)
  @OptionalNotNull()
  @IsArray({ message: 'events must be an array of event types' })
  events?: unknown[];

  @ApiPropertyOptional({ maxLength: WEBHOOK_DESCRIPTION_MAX })
  @OptionalNotNull()
  // Decorators run bottom-up; with stopAtFirstError the type check must come first.
  @MaxLength(WEBHOOK_DESCRIPTION_MAX, {
    message: `description must be at most ${WEBHOOK_DESCRIPTION_MAX} characters`,
  })
  @IsString({ message: 'description must be a string' })
  description?: string;

  @ApiPropertyOptional({
    description:
      '`false` disables it (reason `manual`): nothing more is queued for it. `true` enables it again, whatever disabled it; its pending deliveries resume.',
  })
  @OptionalNotNull()
  @IsBoolean({ message: 'enabled must be true or false' })
  enabled?: boolean;
}

export class RecoverDto {
  @ApiProperty({
    type: 'integer',
    example: 1764201600000,
    description:
      'Ms since the epoch: every failed delivery queued at or after it is queued again. At most WEBHOOK_RETENTION_MS ago.',
  })
  since: unknown;
}

export class WebhookEndpointDto {
  @ApiProperty({ example: EP_EXAMPLE })
  id: string;

  @ApiProperty({ example: 'https://example.com/chat-webhooks' })
  url: string;

  @ApiProperty(EVENTS_DOC)
  events: string[];

  @ApiProperty({ example: 'CRM sync' })
  description: string;

  @ApiProperty({ enum: ['enabled', 'disabled'] })
  status: 'enabled' | 'disabled';

  @ApiProperty({
    enum: ['gone', 'failing', 'backlog', 'manual'],
    nullable: true,
    description:
      '`gone`: it answered 410; `failing`: no 2xx for WEBHOOK_DISABLE_AFTER_MS while a delivery used up its attempts; `backlog`: its queue reached WEBHOOK_MAX_PENDING, or it held the most when the queues reached WEBHOOK_MAX_BYTES (it queues nothing new but still sends what it holds); `manual`: PATCH enabled false.',
  })
  disabledReason: DisabledReason | null;

  @ApiProperty({ type: 'integer' })
  createdAt: number;

  @ApiProperty({ type: 'integer' })
  updatedAt: number;

  @ApiProperty({ type: 'integer', nullable: true, description: 'Its last 2xx answer.' })
  lastSuccessAt: number | null;

  @ApiProperty({
    type: 'integer',
    nullable: true,
    description: 'The first failed attempt since the last 2xx; null after a 2xx.',
  })
  failingSince: number | null;

  @ApiProperty({
    type: [Number],
    description: 'When each previous secret still signing stops (rotation).',
  })
  previousSecretsExpireAt: number[];
}

export class CreatedWebhookDto extends WebhookEndpointDto {
  @ApiProperty({
    example: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
    description: 'The signing secret: shown here and on rotation only. Keep it.',
  })
  secret: string;
}

export class WebhookListDto {
  @ApiProperty({ type: [WebhookEndpointDto] })
  webhooks: WebhookEndpointDto[];
}

export class RotatedSecretDto {
  @ApiProperty({ example: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw' })
  secret: string;

  @ApiProperty({
    type: 'integer',
    description: 'Until when the previous secret signs beside this one (24 h).',
  })
  previousSecretExpiresAt: number;
}

export class DeliveryAttemptDto {
  @ApiProperty({ type: 'integer' })
  at: number;

  @ApiProperty({ type: 'integer', nullable: true, example: 500 })
  statusCode: number | null;

  @ApiProperty({ type: 'integer', example: 31 })
  durationMs: number;

  @ApiProperty({
    type: String,
    nullable: true,
    example: 'status 500',
    description:
      'Null on success: `status <code>`, `timeout`, `ECONNREFUSED`, `address refused: …`, `aborted`.',
  })
  error: string | null;
}

export class DeliveryDto {
  @ApiProperty({
    example: 'evt_5b0c3f9e2f7c4a539d0e0b7d3c1a8e21_81627395812_7',
    description: 'The event id (`webhook-id`).',
  })
  id: string;

  @ApiProperty({ enum: WEBHOOK_EVENT_TYPES })
  type: WebhookEventType;

  @ApiProperty({ enum: ['pending', 'succeeded', 'failed'] })
  status: DeliveryStatus;

  @ApiProperty({ type: 'integer', description: 'When it was queued.' })
  createdAt: number;

  @ApiProperty({ type: 'integer', nullable: true })
  nextAttemptAt: number | null;

  @ApiProperty({ type: [DeliveryAttemptDto] })
  attempts: DeliveryAttemptDto[];
}

export class DeliveryPageDto {
  @ApiProperty({ type: [DeliveryDto] })
  deliveries: DeliveryDto[];

  @ApiProperty({
    type: String,
    nullable: true,
    description: 'Send it back as `cursor` for the next page.',
  })
  nextCursor: string | null;
}

export class QueuedDeliveryDto {
  @ApiProperty({ example: 'evt_test_6f1d2c3b4a5948e7a6b5c4d3e2f1a0b9' })
  deliveryId: string;
}

export class RecoveredDto {
  @ApiProperty({ type: 'integer', example: 3 })
  requeued: number;
}

export class DeletedWebhookDto {
  @ApiProperty({ example: true })
  success: true;

  @ApiProperty({ example: EP_EXAMPLE })
  webhookId: string;
}
