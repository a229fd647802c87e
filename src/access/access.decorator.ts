import { SetMetadata } from '@nestjs/common';

/**
 * Who may call a route when API_KEYS is set. A route without this decorator takes an API
 * key: new routes are closed until opened on purpose.
 *
 * - `public`: anyone, credential or not (health probes).
 * - `customer`: an API key, or the customer token of the route's conversation.
 * - `customer-post`: as `customer`, and a customer may only send a body whose `sender` is
 *   `customer` (posts, typing, read receipts).
 * - `open-create`: an API key; anyone when PUBLIC_CONVERSATIONS is true.
 * - `api-key-required`: an API key, and refused (403 api_keys_required) without API_KEYS, where
 *   anyone could call it (webhooks: an open server must not call addresses for anyone).
 */
export type AccessRule =
  'public' | 'customer' | 'customer-post' | 'open-create' | 'api-key-required';

export const ACCESS_RULE = 'access-rule';

export const Access = (rule: AccessRule) => SetMetadata(ACCESS_RULE, rule);
