import {
  Body,
  Controller,
  Delete,
  Get,
  HttpCode,
  Headers,
  HttpStatus,
  Post,
  Query,
  Res,
} from '@nestjs/common';
import {
  ApiBody,
  ApiCreatedResponse,
  ApiHeader,
  ApiNoContentResponse,
  ApiOkResponse,
  ApiOperation,
  ApiParam,
  ApiProduces,
  ApiQuery,
  ApiTags,
} from '@nestjs/swagger';
import type { Response } from 'express';
import { Access } from '../access/access.decorator';
import { AccessService } from '../access/access.service';
import { ApiGuarded, ApiJsonBody, ApiProblem } from '../common/errors/api-problem.decorator';
import { ConversationId, MessageId } from './route-params';
import { JsonText } from '../http/json-text';
import { ConversationsService } from './conversations.service';
import {
  ApiConversation,
  ApiConversationWrite,
  ApiIdempotent,
  WRITE_UNAVAILABLE,
} from './conversations.openapi';
import {
  ConversationHistoryDto,
  CreatedConversationDto,
  DeleteMessageResponseDto,
  MessageDto,
  MessagePageDto,
  ReadStateDto,
} from './dto/conversation.dto';
import { parseInitialState } from './dto/state-patch';
import {
  etagOf,
  toCreatedConversationDto,
  toConversationHistoryJson,
  toDeleteMessageResponseDto,
  toMessageJson,
  toMessagePageJson,
  toReadStateDto,
} from './dto/conversation.mapper';
import { CreateMessageDto } from './dto/create-message.dto';
import { CreateConversationDto } from './dto/inbox.dto';
import { ReadDto, TypingDto } from './dto/signal.dto';
import { PageQueryDto } from './dto/page-query.dto';
import { EventStreamsService, parseLastEventId } from './event-streams.service';
import { IdempotencyKey, REPLAYED_HEADER } from './idempotency';
import { IdempotentWrite } from './conversation.repository';

/** Marks a replayed answer (an Idempotency-Key retry). */
const replayed = (res: Response, replay: boolean | undefined) =>
  replay && res.setHeader(REPLAYED_HEADER, 'true');

@ApiTags('conversations')
@ApiGuarded()
@Controller('api/conversations')
export class ConversationsController {
  constructor(
    private readonly conversations: ConversationsService,
    private readonly streams: EventStreamsService,
    private readonly access: AccessService,
  ) {}

  @Post()
  @Access('open-create')
  @ApiOperation({
    summary: 'Open a conversation',
    description:
      'Takes no body, or its initial state: `status` (open or pending), `assignee`, `team`, `customer`, ' +
      '`metadata` (rules as in PATCH). With API_KEYS set, needs an API key unless PUBLIC_CONVERSATIONS=true, ' +
      'and a create without a key may set only `customer.name` and `customer.email`. ' +
      'The answer carries the `customerToken` for this conversation.',
  })
  @ApiBody({ type: CreateConversationDto, required: false })
  @ApiCreatedResponse({
    type: CreatedConversationDto,
    description: 'Location: /api/conversations/{id}',
  })
  @ApiIdempotent()
  @ApiProblem('validation_failed', 'validation_failed (unknown body fields) or malformed_json')
  @ApiProblem('forbidden', 'forbidden: a customer token cannot open conversations')
  @ApiProblem(
    'capacity_exceeded',
    `capacity_exceeded: the store holds MAX_CONVERSATIONS; ${WRITE_UNAVAILABLE}`,
  )
  @ApiProblem('store_full')
  async create(
    @Body() body: unknown,
    @IdempotencyKey() idempotency: IdempotentWrite | undefined,
    @Res({ passthrough: true }) res: Response,
  ): Promise<JsonText<CreatedConversationDto>> {
    // A token minted without an API key is anonymous (see access.service.ts).
    const anonymous = !this.access.enabled || !(await this.access.hasApiKey(res.req));
    // Open mode lets anyone set everything; with API_KEYS, only a key sets more than the
    // customer's name and email.
    const initial = parseInitialState(
      body,
      this.access.enabled && !(await this.access.hasApiKey(res.req)),
    );
    const { conversation, customerToken } = await this.conversations.createConversation(
      idempotency,
      anonymous,
      initial,
    );
    // A UUID: nothing in it for res.location to encode.
    res.setHeader('Location', `/api/conversations/${conversation.id}`);
    replayed(res, conversation.replayed);
    return JsonText.of(toCreatedConversationDto(conversation, customerToken));
  }

  @Get(':conversationId')
  @Access('customer')
  @ApiOperation({
    summary: 'Read a conversation with its whole history',
    description:
      'With its state (status, snooze, assignee, team, customer, metadata, unread counts, waitingSince) ' +
      'and `ETag: "<life>.<seq>"` for PATCH If-Match. A customer token sees its status, snooze, ' +
      '`unread.customer` and `customer.name` only.',
  })
  @ApiOkResponse({ type: ConversationHistoryDto })
  @ApiConversation('conversation_not_found (also for an id that is not a UUID)')
  async get(
    @ConversationId() conversationId: string,
    @Res({ passthrough: true }) res: Response,
  ): Promise<JsonText<ConversationHistoryDto>> {
    const history = await this.conversations.getConversation(conversationId);
    // Open mode lets everyone see everything: no principal to ask for.
    const viewer =
      this.access.enabled && (await this.access.principal(res.req)).kind === 'customer'
        ? 'customer'
        : 'agent';
    res.setHeader('ETag', etagOf(history));
    // Already serialized: see toConversationHistoryJson.
    return new JsonText(toConversationHistoryJson(history, viewer, this.conversations.now()));
  }

  @Get(':conversationId/events')
  @Access('customer')
  @ApiOperation({
    summary: 'Follow a conversation live (Server-Sent Events)',
    description:
      'Events: `message.created` (the message), `message.deleted` (`{ messageId, seq }`), ' +
      '`conversation.read` (`{ sender, seq }`: how far that side has read), ' +
      '`conversation.evicted` (then the stream ends), `typing` (`{ sender, typing, expiresAt }`, ' +
      'with no `id`: never replayed), and `reset` when the replay buffer ' +
      '(EVENT_REPLAY_LIMIT changes) no longer covers what a reconnecting client missed: reload the ' +
      "history. Each event's `id` is the conversation's seq of that change; send it back as " +
      '`Last-Event-ID` (or `?lastEventId=`) to get every change after it. A comment line every ' +
      'SSE_HEARTBEAT_MS keeps proxies from closing an idle stream. A client that stops reading has ' +
      'its stream ended once SSE_MAX_BACKLOG_BYTES wait unsent: reconnect with `Last-Event-ID`.',
  })
  @ApiHeader({ name: 'Last-Event-ID', required: false, description: 'The last seq received' })
  @ApiQuery({ name: 'lastEventId', required: false, type: 'integer' })
  @ApiProduces('text/event-stream')
  @ApiOkResponse({ description: 'text/event-stream', schema: { type: 'string' } })
  @ApiConversation()
  @ApiProblem('validation_failed', 'validation_failed: Last-Event-ID is not a seq')
  @ApiProblem(
    'stream_capacity_exceeded',
    'stream_capacity_exceeded: this server serves MAX_EVENT_STREAMS streams (429 too_many_streams: ' +
      'this client holds MAX_EVENT_STREAMS_PER_CLIENT). See Retry-After',
  )
  async events(
    @ConversationId() conversationId: string,
    @Headers('last-event-id') header: string | undefined,
    @Query('lastEventId') query: unknown,
    @Res() res: Response,
  ): Promise<void> {
    await this.streams.stream(conversationId, parseLastEventId(header ?? query), res);
  }

  @Get(':conversationId/messages')
  @Access('customer')
  @ApiOperation({
    summary: 'Read a page of messages in seq order',
    description:
      'With `after`: the `limit` messages that follow that seq; with `before`: the `limit` messages ' +
      'that precede it; with neither: the newest `limit`. Always ascending seq. The cost grows with ' +
      'the page, not the conversation.',
  })
  @ApiOkResponse({ type: MessagePageDto })
  @ApiConversation()
  @ApiProblem('validation_failed', 'validation_failed: a bad limit or cursor, or both cursors')
  async page(
    @ConversationId() conversationId: string,
    @Query() query: PageQueryDto,
  ): Promise<JsonText<MessagePageDto>> {
    const page = await this.conversations.getPage(conversationId, query);
    return new JsonText(toMessagePageJson(page));
  }

  @Post(':conversationId/messages')
  @Access('customer-post')
  @ApiOperation({
    summary: 'Post a message as the customer or the agent',
    description: 'With a customer token, only as `customer`.',
  })
  @ApiCreatedResponse({ type: MessageDto })
  @ApiConversation()
  @ApiIdempotent()
  @ApiJsonBody('validation_failed (see errors) or malformed_json')
  @ApiProblem('sender_not_allowed', 'sender_not_allowed: a customer token posting as agent')
  @ApiProblem('conversation_full')
  @ApiConversationWrite()
  async postMessage(
    @ConversationId() conversationId: string,
    @Body() dto: CreateMessageDto,
    @IdempotencyKey() idempotency: IdempotentWrite | undefined,
    @Res({ passthrough: true }) res: Response,
  ): Promise<JsonText<MessageDto>> {
    const message = await this.conversations.postMessage(conversationId, dto, idempotency);
    replayed(res, message.replayed);
    // The text the store kept as it wrote the message, when it has it: see toMessageJson.
    return new JsonText(toMessageJson(message));
  }

  @Post(':conversationId/typing')
  @HttpCode(HttpStatus.NO_CONTENT)
  @Access('customer-post')
  @ApiOperation({
    summary: 'Say that the customer or the agent is typing, or stopped',
    description:
      'Every subscriber of the event stream gets `event: typing` with ' +
      '`{ sender, typing, expiresAt }` (now + TYPING_TTL_MS: hide the indicator then unless renewed). ' +
      'Not stored, not replayed, no seq, not activity. At most one `typing: true` a second per ' +
      'conversation and sender goes out from each server process; renewals in between are absorbed. ' +
      '`typing: false` always goes out. With a customer token, only as `customer`.',
  })
  @ApiNoContentResponse({ description: 'Sent (or absorbed as a renewal)' })
  @ApiConversation()
  @ApiJsonBody('validation_failed (see errors) or malformed_json')
  @ApiProblem('sender_not_allowed', 'sender_not_allowed: a customer token sending as agent')
  @ApiProblem('store_unavailable', 'store_unavailable. See Retry-After')
  async typing(@ConversationId() conversationId: string, @Body() dto: TypingDto): Promise<void> {
    await this.conversations.sendTyping(conversationId, dto);
  }

  @Post(':conversationId/read')
  @HttpCode(HttpStatus.OK)
  @Access('customer-post')
  @ApiOperation({
    summary: 'Report how far the customer or the agent has read',
    description:
      "Moves the sender's read horizon up to `seq`: a change to the conversation, which takes the " +
      'next seq, counts as activity and goes out as `event: conversation.read` (replayed like any ' +
      'change). A seq at or below the horizon changes nothing and answers the current state. ' +
      'With a customer token, only as `customer`.',
  })
  @ApiOkResponse({ type: ReadStateDto })
  @ApiConversation()
  @ApiJsonBody(
    "validation_failed (see errors; also a seq beyond the conversation's last seq) or malformed_json",
  )
  @ApiProblem('sender_not_allowed', 'sender_not_allowed: a customer token reading as agent')
  @ApiConversationWrite()
  async read(
    @ConversationId() conversationId: string,
    @Body() dto: ReadDto,
  ): Promise<ReadStateDto> {
    return toReadStateDto(await this.conversations.markRead(conversationId, dto));
  }

  @Delete(':conversationId/messages/:messageId')
  @HttpCode(HttpStatus.OK)
  @ApiOperation({
    summary: 'Delete a message',
    description: 'Takes an API key when API_KEYS is set.',
  })
  @ApiOkResponse({ type: DeleteMessageResponseDto })
  @ApiConversation('conversation_not_found or message_not_found')
  @ApiParam({ name: 'messageId', format: 'uuid' })
  @ApiProblem('forbidden', 'forbidden: a customer token cannot delete')
  @ApiProblem('store_unavailable', WRITE_UNAVAILABLE)
  async deleteMessage(
    @ConversationId() conversationId: string,
    @MessageId() messageId: string,
  ): Promise<DeleteMessageResponseDto> {
    const deleted = await this.conversations.deleteMessage(conversationId, messageId);
    return toDeleteMessageResponseDto(deleted.messageId);
  }
}
