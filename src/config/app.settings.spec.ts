import { availableParallelism } from 'node:os';
import { getHeapStatistics } from 'node:v8';
import { AppConfig, validateConfig, VARIABLES } from './app.config';
import {
  declaredFieldsOf,
  DERIVATIONS,
  oldSpaceLimit,
  SETTINGS_GROUPS,
  settingsOf,
  storeByteBudget,
} from './app.settings';
import { Declarations } from './env-declaration';

const MIB = 1024 * 1024;

const settings = (env: Record<string, string> = {}) => settingsOf(validateConfig(env));

describe('settingsOf', () => {
  it('resolves a configuration once: the same frozen object every time', () => {
    const config = validateConfig({});
    const first = settingsOf(config);

    expect(settingsOf(config)).toBe(first);
    expect(Object.isFrozen(first)).toBe(true);
    expect(Object.isFrozen(first.http)).toBe(true);
  });

  it('parses the lists: API keys, CORS origins, Redis Cluster seeds', () => {
    const { access, http, redis } = settings({
      API_KEYS: 'backend-key-0123456789, agent-console-key-abcdef',
      CORS_ORIGINS: 'https://app.example.com, http://localhost:5173',
      REDIS_URL: '',
      REDIS_CLUSTER_NODES: '10.0.0.1:7000,rediss://[::1]:7002',
    });

    expect(access.apiKeys).toEqual(['backend-key-0123456789', 'agent-console-key-abcdef']);
    expect(access.enabled).toBe(true);
    expect(http.corsOrigins).toEqual(['https://app.example.com', 'http://localhost:5173']);
    expect(redis.clusterNodes).toEqual([
      { host: '10.0.0.1', port: 7000, tls: false },
      { host: '::1', port: 7002, tls: true },
    ]);
  });

  it('leaves access control off, CORS off and one Redis by default', () => {
    const { access, http, redis } = settings();

    expect(access).toEqual({ apiKeys: [], enabled: false, publicConversations: false });
    expect(http.corsOrigins).toEqual([]);
    expect(redis.clusterNodes).toEqual([]);
  });

  it.each<[string, boolean | number | string]>([
    ['false', false],
    ['true', true],
    ['2', 2],
    ['loopback, 10.0.0.0/8', 'loopback, 10.0.0.0/8'],
  ])('reads TRUST_PROXY=%j as %j', (raw, expected) => {
    expect(settings({ TRUST_PROXY: raw }).http.trustProxy).toEqual(expected);
  });

  it('gives the Redis address without its credentials', () => {
    expect(
      settings({ REDIS_URL: 'rediss://user:secret@redis.internal:6380/2' }).redis.address,
    ).toBe('rediss://redis.internal:6380/2');
    expect(settings({ REDIS_URL: 'redis://:pw@127.0.0.1:6379/' }).redis.address).toBe(
      'redis://127.0.0.1:6379',
    );
  });

  it('keeps a post Idempotency-Key for IDEMPOTENCY_TTL_MS, at most CONVERSATION_TTL_MS', () => {
    expect(settings().idempotency.postKeyTtlMs).toBe(1_800_000);
    expect(
      settings({ IDEMPOTENCY_TTL_MS: '60000', CONVERSATION_TTL_MS: '120000' }).idempotency
        .postKeyTtlMs,
    ).toBe(60_000);
  });

  it('caps the headers timeout by the request timeout', () => {
    expect(settings().http.headersTimeoutMs).toBe(10_000);
    expect(
      settings({ HEADERS_TIMEOUT_MS: '20000', REQUEST_TIMEOUT_MS: '15000' }).http.headersTimeoutMs,
    ).toBe(15_000);
  });

  it('runs a worker per core for WORKERS=-1, else as many as asked', () => {
    expect(settings().cluster.workers).toBe(availableParallelism());
    expect(settings({ WORKERS: '0' }).cluster.workers).toBe(0);
    expect(settings({ WORKERS: '3' }).cluster.workers).toBe(3);
  });

  it('makes about 30 activity generations per TTL, none under a second', () => {
    expect(settings({ CONVERSATION_TTL_MS: '1800000' }).store.generationMs).toBe(60_000);
    expect(settings({ CONVERSATION_TTL_MS: '1000' }).store.generationMs).toBe(1_000);
  });

  it('takes MAX_STORE_BYTES as the budget, else derives it from the old space', () => {
    const derived = Math.max(8 * MIB, Math.floor((oldSpaceLimit() - 32 * MIB) / 2));

    expect(settings({ MAX_STORE_BYTES: '1000000' }).store.byteBudget).toBe(1_000_000);
    expect(settings().store.byteBudget).toBe(derived);
    expect(storeByteBudget(0)).toBe(derived);
    // A 128 MiB old space: 48 MiB, whatever the young generation of this Node version.
    expect(storeByteBudget(0, 128 * MIB)).toBe(48 * MIB);
    expect(storeByteBudget(0, 40 * MIB)).toBe(8 * MIB);
  });

  it('reads the old space from --max-old-space-size, in the arguments or NODE_OPTIONS', () => {
    const heap = 320 * MIB; // Node 24's heap limit for a 128 MiB old space
    expect(oldSpaceLimit(['--max-old-space-size=128'], '', heap)).toBe(128 * MIB);
    expect(oldSpaceLimit([], '--inspect --max_old_space_size=256', heap)).toBe(256 * MIB);
    expect(oldSpaceLimit([], '--max-old-space-size 96', heap)).toBe(96 * MIB);
    // The command line wins over NODE_OPTIONS (Node reads NODE_OPTIONS first), and of two in
    // one place the last.
    expect(oldSpaceLimit(['--max-old-space-size=256'], '--max-old-space-size=4096', heap)).toBe(
      256 * MIB,
    );
    expect(oldSpaceLimit([], '--max-old-space-size=64 --max-old-space-size=128', heap)).toBe(
      128 * MIB,
    );
  });

  it('else takes the young generation (three semi-spaces) off the heap limit', () => {
    expect(oldSpaceLimit([], '--max-semi-space-size=16', 176 * MIB)).toBe(128 * MIB);
    // No flag at all: the largest default semi-space (64 MiB) is assumed, never a larger old space.
    expect(oldSpaceLimit([], '', 4288 * MIB)).toBe(4096 * MIB);
    expect(oldSpaceLimit([], '', 4192 * MIB)).toBeLessThanOrEqual(4096 * MIB);
  });

  it('on this process, never takes the old space for more than the heap limit allows', () => {
    const { heap_size_limit } = getHeapStatistics();
    expect(oldSpaceLimit()).toBeLessThan(heap_size_limit);
    expect(oldSpaceLimit()).toBeGreaterThan(0);
  });
});

describe('the declarations', () => {
  const declarations: Declarations = VARIABLES;
  const groups = Object.keys(SETTINGS_GROUPS) as (keyof typeof SETTINGS_GROUPS)[];
  const config = validateConfig({});
  const derivations: Partial<
    Record<string, (config: AppConfig, declared: Record<string, unknown>) => object>
  > = DERIVATIONS as never;

  /** The fields group's derivation gives, and the variables it reads for them. */
  function derived(group: string): { fields: string[]; reads: Set<string> } {
    const reads = new Set<string>();
    const watched = new Proxy(config, {
      get: (target, name: string) => {
        reads.add(name);
        return target[name as keyof AppConfig];
      },
    });
    const fields = derivations[group]?.(watched, declaredFieldsOf(config, group as never)) ?? {};
    return { fields: Object.keys(fields), reads };
  }

  it('puts every variable in a settings group, or says that none reads it', () => {
    for (const [name, declaration] of Object.entries(declarations)) {
      expect({ name, group: [...groups, 'none'].includes(declaration.group) }).toEqual({
        name,
        group: true,
      });
      if (declaration.group === 'none') {
        expect({ name, field: declaration.field }).toEqual({ name, field: undefined });
      }
    }
  });

  it('has every variable without a field read by its group', () => {
    for (const [name, declaration] of Object.entries(declarations)) {
      if (declaration.group !== 'none' && declaration.field === undefined) {
        expect({ name, readBy: derived(declaration.group).reads.has(name) }).toEqual({
          name,
          readBy: true,
        });
      }
    }
  });

  it('fills every settings field from exactly one source: a variable, or its group', () => {
    const settings = settingsOf(config);
    for (const group of groups) {
      const declared = Object.keys(declaredFieldsOf(config, group));
      const sources = [...declared, ...derived(group).fields].sort();
      expect({ group, fields: Object.keys(settings[group]).sort() }).toEqual({
        group,
        fields: sources,
      });
      expect({ group, twice: sources.filter((field, i) => sources[i - 1] === field) }).toEqual({
        group,
        twice: [],
      });
      for (const [field, value] of Object.entries(settings[group])) {
        expect({ group, field, set: value !== undefined }).toEqual({ group, field, set: true });
      }
    }
  });
});
