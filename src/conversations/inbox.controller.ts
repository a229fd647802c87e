import {
  Body,
  Controller,
  Get,
  Headers,
  HttpCode,
  HttpStatus,
  Patch,
  Post,
  Query,
  Res,
} from '@nestjs/common';
import {
  ApiBody,
  ApiHeader,
  ApiOkResponse,
  ApiOperation,
  ApiProduces,
  ApiQuery,
  ApiTags,
} from '@nestjs/swagger';
import type { Response } from 'express';
import { ApiGuarded, ApiJsonBody, ApiProblem } from '../common/errors/api-problem.decorator';
import { ConversationId } from './route-params';
import { JsonText } from '../http/json-text';
import { ApiConversation, ApiConversationWrite } from './conversations.openapi';
import {
  ClaimDto,
  ConversationStateDto,
  InboxCountsDto,
  InboxPageDto,
  StatePatchDto,
} from './dto/inbox.dto';
import { etagOf, toConversationStateDto, toInboxConversationDto } from './dto/conversation.mapper';
import { EventStreamsService } from './event-streams.service';
import { INBOX_LIMIT_DEFAULT, INBOX_LIMIT_MAX, InboxService, StateAnswer } from './inbox.service';

/**
 * The agent inbox: the list, its counts and its feed, and the state changes of one
 * conversation. API keys only (no @Access rule: a customer token gets 403 forbidden); open
 * mode lets anyone. Registered before ConversationsController, so that `counts` and `events`
 * are not taken for a conversation id.
 */
@ApiTags('inbox')
@ApiGuarded()
@Controller('api/conversations')
export class InboxController {
  constructor(
    private readonly inbox: InboxService,
    private readonly streams: EventStreamsService,
  ) {}

  @Get()
  @ApiOperation({
    summary: 'List conversations (the inbox)',
    description:
      'Filters combine (AND). Keyset pages: send `nextCursor` back as `cursor` with the same filters ' +
      '(only `limit` may change) until it is null. A page examines at most 10 × limit conversations and ' +
      'may hold fewer than `limit` with a cursor. A traversal never returns a conversation twice and ' +
      'returns every one that matched throughout with an unchanged sort key; one whose key changed ' +
      'during it has lastActivityAt ≥ T0 (the first page’s time) and is found by listing again with ' +
      '`activeSince=T0`. See docs/api.md#the-inbox.',
  })
  @ApiQuery({
    name: 'status',
    required: false,
    description: 'One or a comma list of open, pending, snoozed, resolved; none: every status.',
  })
  @ApiQuery({
    name: 'assignee',
    required: false,
    description: 'An assignee, `none` (unassigned) or `any` (assigned).',
  })
  @ApiQuery({ name: 'team', required: false })
  @ApiQuery({ name: 'customer', required: false, description: 'A customer.externalId.' })
  @ApiQuery({
    name: 'unread',
    required: false,
    enum: ['agent', 'customer'],
    description: 'That side has unread messages.',
  })
  @ApiQuery({
    name: 'activeSince',
    required: false,
    type: 'integer',
    description: 'lastActivityAt at or after (ms).',
  })
  @ApiQuery({
    name: 'sort',
    required: false,
    enum: ['-lastActivityAt', 'waitingSince'],
    description: '`waitingSince`: the queue, longest waiting first, only those waiting.',
  })
  @ApiQuery({
    name: 'limit',
    required: false,
    type: 'integer',
    description: `1 to ${INBOX_LIMIT_MAX}; default ${INBOX_LIMIT_DEFAULT}.`,
  })
  @ApiQuery({ name: 'cursor', required: false })
  @ApiOkResponse({ type: InboxPageDto })
  @ApiProblem(
    'validation_failed',
    'validation_failed: a bad filter, sort, limit or cursor, or a cursor of other filters',
  )
  @ApiProblem('forbidden', 'forbidden: a customer token')
  @ApiProblem('store_unavailable', 'store_unavailable. See Retry-After')
  async list(@Query() query: Record<string, unknown>): Promise<JsonText<InboxPageDto>> {
    const listing = await this.inbox.list(query);
    const now = this.inbox.now();
    return JsonText.of<InboxPageDto>({
      conversations: listing.rows.map((row) => toInboxConversationDto(row, now)),
      nextCursor: listing.nextCursor,
    });
  }

  @Get('counts')
  @ApiOperation({ summary: 'Count conversations by status, and assigned or not' })
  @ApiQuery({ name: 'assignee', required: false, description: 'Count only this assignee’s.' })
  @ApiOkResponse({ type: InboxCountsDto })
  @ApiProblem('validation_failed', 'validation_failed: a bad assignee, or another parameter')
  @ApiProblem('forbidden', 'forbidden: a customer token')
  async counts(@Query() query: Record<string, unknown>): Promise<InboxCountsDto> {
    return this.inbox.counts(query);
  }

  @Get('events')
  @ApiOperation({
    summary: 'Follow every conversation (the inbox feed, Server-Sent Events)',
    description:
      '`reset` first, then `conversation.created` and `conversation.updated` (the conversation as the ' +
      'list shows it) after every change of any conversation (posts, deletes, reads, state), and ' +
      '`conversation.evicted` (`{ conversationId }`). No ids and no replay: on `reset` (at connect, ' +
      'after the server lost its store connection, or when this client fell behind by ' +
      'SSE_MAX_BACKLOG_BYTES) list again with `activeSince`. Takes a place under the stream caps.',
  })
  @ApiProduces('text/event-stream')
  @ApiOkResponse({ description: 'text/event-stream', schema: { type: 'string' } })
  @ApiProblem('forbidden', 'forbidden: a customer token')
  @ApiProblem(
    'stream_capacity_exceeded',
    'stream_capacity_exceeded (429 too_many_streams: this client holds MAX_EVENT_STREAMS_PER_CLIENT). See Retry-After',
  )
  async events(@Res() res: Response): Promise<void> {
    await this.streams.streamInbox(res);
  }

  @Patch(':conversationId')
  @ApiOperation({
    summary: 'Change a conversation’s state: status, snooze, assignee, team, customer, metadata',
    description:
      'A JSON merge patch: absent fields stay, `null` removes (customer and metadata merge key by key). ' +
      'A change takes the next seq, is activity, and goes out as `conversation.updated`; a patch that ' +
      'changes nothing answers 200 and takes no seq. `If-Match` (optional) with the ETag of a GET or ' +
      'PATCH answers 412 precondition_failed only if another state change (not a message) came since.',
  })
  @ApiHeader({ name: 'If-Match', required: false, description: 'An ETag: "<life>.<seq>"' })
  @ApiBody({ type: StatePatchDto })
  @ApiOkResponse({ type: ConversationStateDto, description: 'ETag: "<life>.<seq>"' })
  @ApiConversation()
  @ApiJsonBody(
    'validation_failed (see errors: a field, metadata.<key>, an unknown field) or malformed_json',
  )
  @ApiProblem('forbidden', 'forbidden: a customer token')
  @ApiProblem('precondition_failed')
  @ApiConversationWrite()
  async patch(
    @ConversationId() conversationId: string,
    @Body() body: unknown,
    @Headers('if-match') ifMatch: string | undefined,
    @Res({ passthrough: true }) res: Response,
  ): Promise<JsonText<ConversationStateDto>> {
    return this.stateAnswer(await this.inbox.update(conversationId, body, ifMatch), res);
  }

  @Post(':conversationId/claim')
  @HttpCode(HttpStatus.OK)
  @ApiOperation({
    summary: 'Take an unassigned conversation',
    description:
      'Assigns it to `assignee` only if no one holds it, atomically: of several claims at once, one ' +
      'wins and the others get 409 already_assigned naming the holder. The same assignee again: 200, no change.',
  })
  @ApiBody({ type: ClaimDto })
  @ApiOkResponse({ type: ConversationStateDto, description: 'ETag: "<life>.<seq>"' })
  @ApiConversation()
  @ApiJsonBody('validation_failed (see errors) or malformed_json')
  @ApiProblem('forbidden', 'forbidden: a customer token')
  @ApiProblem('already_assigned')
  @ApiConversationWrite()
  async claim(
    @ConversationId() conversationId: string,
    @Body() dto: ClaimDto,
    @Res({ passthrough: true }) res: Response,
  ): Promise<JsonText<ConversationStateDto>> {
    return this.stateAnswer(await this.inbox.claim(conversationId, dto.assignee), res);
  }

  private stateAnswer(answer: StateAnswer, res: Response): JsonText<ConversationStateDto> {
    res.setHeader('ETag', etagOf(answer.conversation));
    return JsonText.of(toConversationStateDto(answer.conversation, this.inbox.now()));
  }
}
