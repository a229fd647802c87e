import { Injectable } from '@nestjs/common';
import { createHash } from 'node:crypto';
import { LimitSettings } from '../config/app.settings';
import { Clock } from '../common/time/clock';
import { FieldError, ProblemException } from '../common/errors/problem';
import { problem, ValidationFailedException } from '../common/errors/problem.catalogue';
import { parseDecimal } from '../common/validation/decimal-integer';
import {
  ConversationHeader,
  ConversationRepository,
  InboxCounts,
  InboxPosition,
  InboxQuery,
  InboxRow,
  StateUpdated,
} from './conversation.repository';
import { ConversationStatus, StateRefusal, STATUSES } from './records/conversation-state';
import { parseStatePatch, principalIdError } from './dto/state-patch';

export const INBOX_LIMIT_DEFAULT = 50;
export const INBOX_LIMIT_MAX = 200;

const QUERY_FIELDS = [
  'status',
  'assignee',
  'team',
  'customer',
  'unread',
  'activeSince',
  'sort',
  'limit',
  'cursor',
];

/** A list's answer: its rows, and the cursor of the next page (null: the end). */
export interface InboxListing {
  rows: InboxRow[];
  nextCursor: string | null;
}

/** A state change's answer: the conversation after it. */
export interface StateAnswer {
  conversation: ConversationHeader;
  /** The seq it took; absent when it changed nothing. */
  seq?: number;
}

/**
 * The inbox: state changes (PATCH, claim), the list with its cursors, and the counts. The
 * store decides every change atomically; this checks what the request says and turns a
 * refusal into its problem.
 */
@Injectable()
export class InboxService {
  constructor(
    private readonly repository: ConversationRepository,
    private readonly clock: Clock,
    private readonly limits: LimitSettings,
  ) {}

  now(): number {
    return this.clock.now();
  }

  async update(conversationId: string, body: unknown, ifMatch?: string): Promise<StateAnswer> {
    const now = this.clock.now();
    const patch = parseStatePatch(body, { now, snoozeMaxMs: this.limits.snoozeMaxMs });
    return answer(
      await this.repository.updateState(conversationId, {
        patch,
        ifMatch: parseIfMatch(ifMatch),
        now,
      }),
    );
  }

  async claim(conversationId: string, assignee: string): Promise<StateAnswer> {
    const error = principalIdError('assignee', assignee);
    if (error) {
      throw new ValidationFailedException([error]);
    }
    return answer(
      await this.repository.updateState(conversationId, {
        patch: { assignee },
        claim: true,
        now: this.clock.now(),
      }),
    );
  }

  async list(raw: Record<string, unknown>): Promise<InboxListing> {
    const now = this.clock.now();
    const { query, filters } = parseListQuery(raw);
    let t0 = now;
    let after: InboxPosition | undefined;
    if (raw.cursor !== undefined) {
      const cursor = decodeCursor(raw.cursor);
      if (!cursor || cursor.filters !== filters) {
        throw new ValidationFailedException([
          {
            field: 'cursor',
            message: cursor
              ? 'cursor belongs to a list with other filters: send the same filters (only limit may change)'
              : 'cursor is not one this server gave',
          },
        ]);
      }
      t0 = cursor.t0;
      after = cursor.position;
    }
    const page = await this.repository.list({ ...query, after, t0, now });
    return {
      rows: page.rows,
      nextCursor: page.next && encodeCursor({ position: page.next, t0, filters }),
    };
  }

  /** The counts' query: `assignee` at most, once; 400 naming each parameter at fault, as list does. */
  async counts(raw: Record<string, unknown>): Promise<InboxCounts> {
    const errors: FieldError[] = Object.keys(raw)
      .filter((field) => field !== 'assignee')
      .map((field) => ({ field, message: `property ${field} should not exist` }));
    const { assignee } = raw;
    if (Array.isArray(assignee)) {
      errors.push({ field: 'assignee', message: 'assignee must be given once, as text' });
    } else if (assignee !== undefined) {
      const error = principalIdError('assignee', assignee);
      if (error) {
        errors.push(error);
      }
    }
    if (errors.length > 0) {
      throw new ValidationFailedException(errors);
    }
    // Counts read the stored status: the wakes due now are written first (the store's owner
    // writes them within a second anyway), so a due snooze counts as open, as answers read it.
    await this.repository.wakeSnoozed(this.clock.now());
    return this.repository.counts(assignee as string | undefined);
  }
}

function answer(updated: StateUpdated): StateAnswer {
  if ('refused' in updated) {
    throw refusalProblem(updated.refused);
  }
  return updated;
}

function refusalProblem(refused: StateRefusal): ProblemException {
  switch (refused.code) {
    case 'precondition_failed':
      return problem('precondition_failed');
    case 'already_assigned': {
      const base = problem('already_assigned');
      return new ProblemException({
        status: base.getStatus(),
        title: base.title,
        code: base.code,
        detail: `The conversation is assigned to ${refused.assignee}.`,
        assignee: refused.assignee,
      });
    }
    case 'validation_failed':
      return new ValidationFailedException([{ field: refused.field, message: refused.message }]);
  }
}

const ETAG = /^\s*(?:W\/)?"(\d{1,15})\.(\d{1,15})"\s*$/;

/** If-Match: one ETag this server gave (`"<life>.<seq>"`); `*` or absent: no condition. */
function parseIfMatch(header: string | undefined): { life: number; version: number } | undefined {
  if (header === undefined || header.trim() === '*') {
    return undefined;
  }
  const match = ETAG.exec(header);
  if (!match) {
    throw new ValidationFailedException([
      { field: 'If-Match', message: 'If-Match must be an ETag this server gave: "<life>.<seq>"' },
    ]);
  }
  return { life: Number(match[1]), version: Number(match[2]) };
}

type ListQuery = Omit<InboxQuery, 'after' | 't0' | 'now'>;

/**
 * The list's query parameters as an InboxQuery, and its filters as one string (what a cursor
 * is bound to); 400 validation_failed naming each parameter at fault. Every parameter is
 * given once at most, and no other is known.
 */
function parseListQuery(raw: Record<string, unknown>): { query: ListQuery; filters: string } {
  const errors: FieldError[] = [];
  const text = (field: string): string | undefined => {
    const value = raw[field];
    if (value === undefined) {
      return undefined;
    }
    if (typeof value !== 'string') {
      errors.push({ field, message: `${field} must be given once, as text` });
      return undefined;
    }
    return value;
  };
  for (const field of Object.keys(raw)) {
    if (!QUERY_FIELDS.includes(field)) {
      errors.push({ field, message: `property ${field} should not exist` });
    }
  }
  let statuses: ConversationStatus[] | null = null;
  const status = text('status');
  if (status !== undefined) {
    const listed = status.split(',');
    if (listed.some((one) => !STATUSES.includes(one as ConversationStatus))) {
      errors.push({
        field: 'status',
        message: `status must be one or a comma list of: ${STATUSES.join(', ')}`,
      });
    } else {
      statuses = STATUSES.filter((one) => listed.includes(one));
    }
  }
  let assignee: string | null | undefined;
  const assigneeText = text('assignee');
  if (assigneeText === 'none') {
    assignee = '';
  } else if (assigneeText === 'any') {
    assignee = null;
  } else if (assigneeText !== undefined) {
    const error = principalIdError('assignee', assigneeText);
    if (error) {
      errors.push({ field: 'assignee', message: `${error.message}; or none, or any` });
    }
    assignee = assigneeText;
  }
  const team = text('team');
  if (team !== undefined) {
    const error = principalIdError('team', team);
    if (error) {
      errors.push(error);
    }
  }
  const customer = text('customer');
  if (customer !== undefined && (customer.length === 0 || customer.length > 128)) {
    errors.push({
      field: 'customer',
      message: 'customer must be an externalId: 1 to 128 characters',
    });
  }
  const unread = text('unread');
  if (unread !== undefined && unread !== 'agent' && unread !== 'customer') {
    errors.push({ field: 'unread', message: 'unread must be one of: agent, customer' });
  }
  let activeSince: number | undefined;
  const activeText = text('activeSince');
  if (activeText !== undefined) {
    activeSince = parseDecimal(activeText);
    if (activeSince === undefined) {
      errors.push({
        field: 'activeSince',
        message: 'activeSince must be a time in ms: an integer, 0 or more',
      });
    }
  }
  const sort = text('sort') ?? '-lastActivityAt';
  if (sort !== '-lastActivityAt' && sort !== 'waitingSince') {
    errors.push({ field: 'sort', message: 'sort must be one of: -lastActivityAt, waitingSince' });
  }
  let limit = INBOX_LIMIT_DEFAULT;
  const limitText = text('limit');
  if (limitText !== undefined) {
    const parsed = parseDecimal(limitText);
    if (parsed === undefined || parsed < 1 || parsed > INBOX_LIMIT_MAX) {
      errors.push({
        field: 'limit',
        message: `limit must be an integer from 1 to ${INBOX_LIMIT_MAX}`,
      });
    } else {
      limit = parsed;
    }
  }
  text('cursor');
  if (errors.length > 0) {
    throw new ValidationFailedException(errors);
  }
  const query: ListQuery = {
    statuses,
    ...(assignee !== undefined ? { assignee } : {}),
    ...(team !== undefined ? { team } : {}),
    ...(customer !== undefined ? { customer } : {}),
    ...(unread !== undefined ? { unread: unread as 'agent' | 'customer' } : {}),
    ...(activeSince !== undefined ? { activeSince } : {}),
    sort: sort as ListQuery['sort'],
    limit,
  };
  const filters = createHash('sha256')
    .update(JSON.stringify([statuses, assignee, team, customer, unread, activeSince, sort]))
    .digest('base64url')
    .slice(0, 16);
  return { query, filters };
}

interface Cursor {
  position: InboxPosition;
  t0: number;
  filters: string;
}

/** Opaque to clients: the position, the traversal's T0 and its filters' digest. */
function encodeCursor(cursor: Cursor): string {
  return Buffer.from(
    JSON.stringify([1, cursor.position.key, cursor.position.id, cursor.t0, cursor.filters]),
  ).toString('base64url');
}

function decodeCursor(raw: unknown): Cursor | null {
  if (typeof raw !== 'string' || raw.length > 512 || !/^[A-Za-z0-9_-]+$/.test(raw)) {
    return null;
  }
  try {
    const [version, key, id, t0, filters] = JSON.parse(
      Buffer.from(raw, 'base64url').toString(),
    ) as unknown[];
    if (
      version === 1 &&
      Number.isSafeInteger(key) &&
      typeof id === 'string' &&
      id.length <= 64 &&
      Number.isSafeInteger(t0) &&
      typeof filters === 'string'
    ) {
      return { position: { key: key as number, id }, t0: t0 as number, filters };
    }
  } catch {
    // not JSON: not ours
  }
  return null;
}
