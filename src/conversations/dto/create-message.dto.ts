import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsIn, IsInt, IsString, Matches, Max, Min, ValidateIf } from 'class-validator';
import { SENDERS, Sender } from '../conversation.repository';

export class CreateMessageDto {
  @ApiProperty({ enum: SENDERS, example: 'customer', description: 'Who wrote the message.' })
  @IsIn(SENDERS, { message: 'sender must be one of: customer, agent' })
  sender: Sender;

  @ApiProperty({
    example: 'Hello, my order has not arrived yet.',
    description:
      'The text, stored exactly as sent. Not empty or only whitespace; at most MAX_MESSAGE_LENGTH characters (10000 by default).',
  })
  // Decorators run bottom-up; with stopAtFirstError the type check must come first.
  @Matches(/\S/, { message: 'content must not be empty or only whitespace' })
  @IsString({ message: 'content must be a string' })
  content: string;

  @ApiPropertyOptional({
    type: 'integer',
    example: 1764201600000,
    description:
      "When the message was written, in milliseconds since the epoch. Defaults to the server's clock; at most MAX_CLOCK_SKEW_MS (5 minutes by default) ahead of it.",
  })
  @Max(Number.MAX_SAFE_INTEGER, { message: 'timestamp is too large' })
  @Min(0, { message: 'timestamp must not be negative' })
  @IsInt({ message: 'timestamp must be an integer number of milliseconds since the epoch' })
  // Optional means absent: an explicit null is refused like any other non-integer.
  @ValidateIf((_dto: unknown, value: unknown) => value !== undefined)
  timestamp?: number;
}
