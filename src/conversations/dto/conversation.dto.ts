import { ApiProperty } from '@nestjs/swagger';
import { SENDERS, Sender } from '../conversation.repository';

const UUID_EXAMPLE = '3f2b9c1e-8a4d-4c7e-9b1a-2d5e6f7a8b9c';
const MESSAGE_ID_EXAMPLE = '9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a';
const TIME_DESCRIPTION = 'Milliseconds since the epoch.';

export class ConversationDto {
  @ApiProperty({ format: 'uuid', example: UUID_EXAMPLE })
  conversationId: string;

  @ApiProperty({
    format: 'uuid',
    example: UUID_EXAMPLE,
    description: 'The same as conversationId.',
  })
  id: string;

  @ApiProperty({ type: 'integer', example: 1764201600000, description: TIME_DESCRIPTION })
  createdAt: number;

  @ApiProperty({
    type: 'integer',
    example: 1764201600000,
    description: `Last create, post or delete. ${TIME_DESCRIPTION} Reads do not count.`,
  })
  lastActivityAt: number;

  @ApiProperty({ type: 'integer', example: 0 })
  messageCount: number;
}

export class CreatedConversationDto extends ConversationDto {
  @ApiProperty({
    example: `${UUID_EXAMPLE}.q3Jm0n8rXcV2bT5yLw9ZkA1sD4fG7hJ0pO6iU3eR2tY`,
    description:
      "Opens this conversation only: give it to the customer's browser, which sends it as " +
      '`Authorization: Bearer <customerToken>` to read the conversation, follow its events and post ' +
      'as `customer`. Returned once: the server keeps only its hash.',
  })
  customerToken: string;
}

export class MessageDto {
  @ApiProperty({ format: 'uuid', example: MESSAGE_ID_EXAMPLE })
  id: string;

  @ApiProperty({ format: 'uuid', example: UUID_EXAMPLE })
  conversationId: string;

  @ApiProperty({ enum: SENDERS, example: 'customer' })
  sender: Sender;

  @ApiProperty({ example: 'Hello, my order has not arrived yet.' })
  content: string;

  @ApiProperty({
    type: 'integer',
    example: 1764201600000,
    description: `When it was written (client-supplied or the server's clock). ${TIME_DESCRIPTION}`,
  })
  timestamp: number;

  @ApiProperty({
    type: 'integer',
    example: 1,
    description:
      'Per-conversation change counter assigned by the server: every change (a message created or deleted, a read horizon moved) takes the next value, never reused.',
  })
  seq: number;

  @ApiProperty({
    type: 'integer',
    example: 1764201600000,
    description: `When the server stored it. ${TIME_DESCRIPTION}`,
  })
  createdAt: number;
}

export class LastReadDto {
  @ApiProperty({
    type: 'integer',
    example: 3,
    description: 'The seq the customer has read up to; 0: nothing yet.',
  })
  customer: number;

  @ApiProperty({
    type: 'integer',
    example: 0,
    description: 'The seq the agent has read up to; 0: nothing yet.',
  })
  agent: number;
}

export class ReadStateDto {
  @ApiProperty({ type: LastReadDto })
  lastRead: LastReadDto;
}

export class ConversationHistoryDto {
  @ApiProperty({ format: 'uuid', example: UUID_EXAMPLE })
  id: string;

  @ApiProperty({ format: 'uuid', example: UUID_EXAMPLE })
  conversationId: string;

  @ApiProperty({ type: 'integer', example: 1764201600000, description: TIME_DESCRIPTION })
  createdAt: number;

  @ApiProperty({ type: 'integer', example: 1764201600000, description: TIME_DESCRIPTION })
  lastActivityAt: number;

  @ApiProperty({ type: 'integer', example: 1 })
  messageCount: number;

  @ApiProperty({ type: LastReadDto, description: 'How far each side has read.' })
  lastRead: LastReadDto;

  @ApiProperty({
    type: [MessageDto],
    description: 'Every message, in chronological order: ascending timestamp, ties by seq.',
  })
  messages: MessageDto[];
}

export class DeleteMessageResponseDto {
  @ApiProperty({ example: true })
  success: true;

  @ApiProperty({ format: 'uuid', example: MESSAGE_ID_EXAMPLE })
  messageId: string;
}

export class MessagePageDto {
  @ApiProperty({ type: [MessageDto], description: 'Ascending seq.' })
  messages: MessageDto[];

  @ApiProperty({
    description:
      'More messages exist in the direction of travel: newer ones for `after`, older ones otherwise.',
  })
  hasMore: boolean;
}
