import { ApiProperty, ApiPropertyOptional, OmitType } from '@nestjs/swagger';
import { IsString } from 'class-validator';
import { STATUSES } from '../records/conversation-state';
import type { ConversationStatus } from '../records/conversation-state';
import { SENDERS, Sender } from '../conversation.repository';

const UUID_EXAMPLE = '3f2b9c1e-8a4d-4c7e-9b1a-2d5e6f7a8b9c';
const ID_PATTERN = '^[A-Za-z0-9._:@-]{1,128}$';

export class CustomerDto {
  @ApiPropertyOptional({ example: 'user-42', description: "Your system's id for the customer." })
  externalId?: string;

  @ApiPropertyOptional({ example: 'Ada' })
  name?: string;

  @ApiPropertyOptional({ example: 'ada@example.com' })
  email?: string;
}

export class UnreadDto {
  @ApiProperty({
    type: 'integer',
    example: 0,
    description: "Agent messages past the customer's read horizon.",
  })
  customer: number;

  @ApiPropertyOptional({
    type: 'integer',
    example: 2,
    description: "Customer messages past the agent's read horizon (not shown to a customer token).",
  })
  agent?: number;
}

export class LastMessageDto {
  @ApiProperty({ enum: SENDERS })
  sender: Sender;

  @ApiProperty({ type: 'integer', example: 6 })
  seq: number;

  @ApiProperty({ description: 'The first 200 characters (code points).' })
  content: string;
}

const STATE_DOCS = {
  status: {
    enum: STATUSES,
    example: 'open',
    description:
      'A snooze reads `open` from `snoozedUntil` on. A customer message reopens a snoozed or resolved conversation.',
  },
  snoozedUntil: {
    type: 'integer',
    nullable: true,
    example: null,
    description: 'With `snoozed`: when it wakes (ms since the epoch).',
  },
  assignee: { type: 'string', nullable: true, pattern: ID_PATTERN, example: 'agent-17' },
  team: { type: 'string', nullable: true, pattern: ID_PATTERN, example: 'billing' },
  waitingSince: {
    type: 'integer',
    nullable: true,
    description:
      'The server time of the first customer message after the last agent message; null when the agent spoke last or nobody spoke.',
  },
} as const;

/** A conversation in the inbox list and feed. */
export class InboxConversationDto {
  @ApiProperty({ format: 'uuid', example: UUID_EXAMPLE })
  id: string;

  @ApiProperty({ format: 'uuid', example: UUID_EXAMPLE })
  conversationId: string;

  @ApiProperty({ type: 'integer', description: 'Its last seq.' })
  seq: number;

  @ApiProperty(STATE_DOCS.status)
  status: ConversationStatus;

  @ApiProperty(STATE_DOCS.snoozedUntil)
  snoozedUntil: number | null;

  @ApiProperty(STATE_DOCS.assignee)
  assignee: string | null;

  @ApiProperty(STATE_DOCS.team)
  team: string | null;

  @ApiProperty({ type: CustomerDto })
  customer: CustomerDto;

  @ApiProperty({ type: 'integer' })
  createdAt: number;

  @ApiProperty({ type: 'integer' })
  lastActivityAt: number;

  @ApiProperty({ type: 'integer' })
  messageCount: number;

  @ApiProperty({ type: UnreadDto })
  unread: UnreadDto;

  @ApiProperty(STATE_DOCS.waitingSince)
  waitingSince: number | null;

  @ApiProperty({ type: LastMessageDto, nullable: true, description: 'The last standing message.' })
  lastMessage: LastMessageDto | null;
}

export class InboxPageDto {
  @ApiProperty({ type: [InboxConversationDto] })
  conversations: InboxConversationDto[];

  @ApiProperty({
    type: 'string',
    nullable: true,
    description:
      'Send it back as `cursor` (with the same filters) for the next page; null: the traversal is over. A page may hold fewer than `limit` rows and still have one.',
  })
  nextCursor: string | null;
}

/** A conversation's state, as PATCH and claim answer it (with its ETag). */
export class ConversationStateDto extends OmitType(InboxConversationDto, ['lastMessage'] as const) {
  @ApiProperty({
    type: 'object',
    additionalProperties: { oneOf: [{ type: 'string' }, { type: 'number' }, { type: 'boolean' }] },
    example: { plan: 'pro', vip: true },
  })
  metadata: Record<string, string | number | boolean>;
}

export class InboxCountsDto {
  @ApiProperty({ type: 'integer' })
  open: number;

  @ApiProperty({ type: 'integer' })
  pending: number;

  @ApiProperty({ type: 'integer' })
  snoozed: number;

  @ApiProperty({ type: 'integer' })
  resolved: number;

  @ApiProperty({ type: 'integer', description: 'Of every status.' })
  assigned: number;

  @ApiProperty({
    type: 'integer',
    description: 'Of every status; with `assignee`, still every unassigned conversation.',
  })
  unassigned: number;
}

/** PATCH /api/conversations/{id}: a JSON merge patch (validated by parseStatePatch). */
export class StatePatchDto {
  @ApiPropertyOptional({ enum: STATUSES })
  status?: ConversationStatus;

  @ApiPropertyOptional({
    type: 'integer',
    nullable: true,
    description:
      'With status `snoozed` (required then): in the future, at most SNOOZE_MAX_MS ahead.',
  })
  snoozedUntil?: number | null;

  @ApiPropertyOptional({
    ...STATE_DOCS.assignee,
    description: '`null` unassigns; `none` and `any` are reserved.',
  })
  assignee?: string | null;

  @ApiPropertyOptional({
    ...STATE_DOCS.team,
    description: '`null` removes; `none` and `any` are reserved.',
  })
  team?: string | null;

  @ApiPropertyOptional({
    type: CustomerDto,
    nullable: true,
    description: 'Merged key by key; `null` removes a key, or all.',
  })
  customer?: CustomerDto | null;

  @ApiPropertyOptional({
    type: 'object',
    nullable: true,
    additionalProperties: { oneOf: [{ type: 'string' }, { type: 'number' }, { type: 'boolean' }] },
    description:
      'Flat: keys ^[A-Za-z0-9_.-]{1,64}$, values strings (at most 256 characters), finite numbers or booleans; at most 50 keys and 4 KB as compact JSON. Merged key by key; `null` removes a key, or all.',
  })
  metadata?: Record<string, string | number | boolean | null> | null;
}

/** POST /api/conversations: the optional body. */
export class CreateConversationDto {
  @ApiPropertyOptional({ enum: ['open', 'pending'], default: 'open' })
  status?: 'open' | 'pending';

  @ApiPropertyOptional(STATE_DOCS.assignee)
  assignee?: string;

  @ApiPropertyOptional(STATE_DOCS.team)
  team?: string;

  @ApiPropertyOptional({
    type: CustomerDto,
    description: 'Without an API key: name and email only.',
  })
  customer?: CustomerDto;

  // Typed values and an example: from `additionalProperties: true`, Swagger UI's "Try it out"
  // made `{ "additionalProp1": {} }`, which the server refuses (400).
  @ApiPropertyOptional({
    type: 'object',
    additionalProperties: { oneOf: [{ type: 'string' }, { type: 'number' }, { type: 'boolean' }] },
    example: { plan: 'pro', vip: true },
    description: 'As in PATCH.',
  })
  metadata?: Record<string, string | number | boolean>;
}

export class ClaimDto {
  @ApiProperty({
    ...STATE_DOCS.assignee,
    nullable: false,
    description: 'Who takes the conversation.',
  })
  @IsString({ message: 'assignee must be a string' })
  assignee: string;
}
