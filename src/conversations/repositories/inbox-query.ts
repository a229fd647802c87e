import type { InboxQuery } from '../conversation.repository';
import { statusAt, StoredCounters, StoredState } from '../records/conversation-state';

/**
 * Whether a conversation, as it stands now, matches every filter of a list query (see
 * InboxQuery): what each store checks on every row its index gives it.
 */
export function matchesInboxQuery(
  state: Pick<StoredState, 'status' | 'snoozedUntil' | 'assignee' | 'team' | 'customer'>,
  counters: StoredCounters,
  lastActivityAt: number,
  query: InboxQuery,
): boolean {
  if (query.statuses && !query.statuses.includes(statusAt(state, query.now).status)) {
    return false;
  }
  if (query.assignee !== undefined) {
    if (query.assignee === null ? state.assignee === '' : state.assignee !== query.assignee) {
      return false;
    }
  }
  if (query.team !== undefined && state.team !== query.team) {
    return false;
  }
  if (query.customer !== undefined && state.customer.externalId !== query.customer) {
    return false;
  }
  if (query.unread === 'agent' && counters.unreadAgent === 0) {
    return false;
  }
  if (query.unread === 'customer' && counters.unreadCustomer === 0) {
    return false;
  }
  if (query.activeSince !== undefined && lastActivityAt < query.activeSince) {
    return false;
  }
  // The queue holds only those waiting: one answered since it was indexed has left it.
  return query.sort !== 'waitingSince' || counters.waitingSince > 0;
}
