import { rateLimitStoreContract } from '../../../../test/contracts/rate-limit-store.contract';
import { InMemoryRateLimitStore } from './in-memory-rate-limit.store';

rateLimitStoreContract('in-memory', async () => ({
  store: new InMemoryRateLimitStore(),
  teardown: async () => undefined,
}));
