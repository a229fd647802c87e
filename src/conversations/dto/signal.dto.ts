import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsBoolean, IsIn, IsInt, Max, Min, ValidateIf } from 'class-validator';
import { SENDERS, Sender } from '../conversation.repository';

const SENDER_DOC = {
  enum: SENDERS,
  example: 'agent',
  description: 'Who it is. With a customer token, only `customer`.',
} as const;

export class TypingDto {
  @ApiProperty(SENDER_DOC)
  @IsIn(SENDERS, { message: 'sender must be one of: customer, agent' })
  sender: Sender;

  @ApiPropertyOptional({
    default: true,
    description: '`false` when the sender stopped typing: sent at once.',
  })
  @IsBoolean({ message: 'typing must be true or false' })
  // Optional means absent: an explicit null is refused like any other non-boolean.
  @ValidateIf((_dto: unknown, value: unknown) => value !== undefined)
  typing?: boolean;
}

export class ReadDto {
  @ApiProperty(SENDER_DOC)
  @IsIn(SENDERS, { message: 'sender must be one of: customer, agent' })
  sender: Sender;

  @ApiProperty({
    type: 'integer',
    example: 3,
    description:
      "The seq read up to (a message's, or any event's id): at most the conversation's last seq. It is taken down to the seq of the last standing message at or below it, and the horizon moves (a change with the next seq) only when that is above it; otherwise the answer is the unchanged horizons. So acknowledging any event id, a receipt's included, is safe: receipts of receipts take no seq.",
  })
  @Max(Number.MAX_SAFE_INTEGER, { message: 'seq is too large' })
  @Min(0, { message: 'seq must not be negative' })
  @IsInt({ message: 'seq must be an integer' })
  seq: number;
}
