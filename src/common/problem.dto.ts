import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';

export class FieldErrorDto {
  @ApiProperty({ example: 'sender' })
  field: string;

  @ApiProperty({ example: 'sender must be one of: customer, agent' })
  message: string;
}

/** Swagger schema of every error body (RFC 9457 problem details). */
export class ProblemDto {
  @ApiProperty({ example: 'urn:chat-server:problem:validation-failed' })
  type: string;

  @ApiProperty({ example: 'Bad Request' })
  title: string;

  @ApiProperty({ type: 'integer', example: 400 })
  status: number;

  @ApiProperty({ example: 'The request is not valid: see errors for each field.' })
  detail: string;

  @ApiProperty({
    example: 'validation_failed',
    description:
      'Stable machine-readable code: validation_failed, malformed_json, payload_too_large, unsupported_media_type, conversation_not_found, message_not_found, not_found, conversation_full, capacity_exceeded, store_unavailable, metrics_unavailable, idempotency_key_reused, replication_timeout, store_full, too_many_streams, stream_capacity_exceeded, internal_error.',
  })
  code: string;

  @ApiPropertyOptional({ type: [FieldErrorDto], description: 'Present for validation_failed.' })
  errors?: FieldErrorDto[];

  @ApiPropertyOptional({
    example: '0d6f1c9e-6c1a-4a53-9a55-2b8e0f4c7a11',
    description:
      "The request's id, as in the X-Request-Id response header (the client's own when it sent a sane one).",
  })
  requestId?: string;
}
