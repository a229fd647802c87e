import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { PROBLEMS } from './problem.catalogue';

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
    // From the catalogue, so that no code goes undocumented.
    description: `Stable machine-readable code: ${Object.keys(PROBLEMS).join(', ')}.`,
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
