import { registerAs } from '@nestjs/config';
import {
  checkedBy,
  ConfigValidationError,
  environmentReader,
  flag,
  integer,
  matching,
  oneOf,
  text,
  ValuesOf,
  variable,
} from './env-declaration';
import {
  ApiKeyListConstraint,
  apiKeyList,
  ClusterNodeListConstraint,
  ClusterNodeSeed,
  clusterNodeList,
  CronExpressionConstraint,
  OriginListConstraint,
  originList,
  RedisUrlConstraint,
  SIZE_PATTERN,
  sizeInBytes,
  trustProxySetting,
} from './env-values';

export { ConfigValidationError } from './env-declaration';
export { apiKeyList, clusterNodeList, originList } from './env-values';
export type { ClusterNodeSeed } from './env-values';

/** The settings groups (app.settings.ts) a variable can feed; one that none reads says 'none'. */
export type SettingsGroup =
  | 'cluster'
  | 'http'
  | 'store'
  | 'redis'
  | 'access'
  | 'rateLimits'
  | 'limits'
  | 'idempotency'
  | 'events'
  | 'eviction'
  | 'snapshot'
  | 'observability'
  | 'webhooks';

/**
 * Every setting the server reads from the environment, each declared once: what it takes, its
 * default, the settings group it feeds and the field it fills there (app.settings.ts derives
 * the rest of a group). The doc comment above each one is its entry in the configuration
 * reference (`npm run docs:config`); a `@default` tag explains the default or stands for one
 * that is derived. Empty counts as unset, so `PORT=` falls back to the default.
 */
export const VARIABLES = {
  /** The environment, by Node's convention. */
  NODE_ENV: variable({
    takes: oneOf(['production', 'development', 'test']),
    default: 'production',
    // Express and other libraries read it from process.env themselves.
    group: 'none',
  }),

  /** The HTTP port. */
  PORT: variable({
    takes: integer({ min: 0, max: 65535 }),
    default: '3000',
    group: 'http',
    field: 'port',
  }),

  /** The address to listen on; `0.0.0.0` is every interface. */
  HOST: variable({
    takes: text(),
    default: '0.0.0.0',
    group: 'http',
    field: 'host',
  }),

  /**
   * Worker processes under node:cluster; 0 runs a single process with no cluster. In a
   * container, set it to the container's CPU limit: the cores Node sees can be the host's.
   * @default one per CPU core
   */
  WORKERS: variable({
    takes: integer({ min: -1, max: 1024 }),
    default: '-1',
    group: 'cluster',
  }),

  /**
   * A conversation with no activity for this long is evicted (default 30 min). Activity is a
   * create, a post, a delete, or a read receipt that moves a horizon.
   */
  CONVERSATION_TTL_MS: variable({
    takes: integer({ min: 1 }),
    default: '1800000',
    group: 'eviction',
    field: 'conversationTtlMs',
  }),

  /** When the eviction sweep runs (default every minute). */
  EVICTION_CRON: variable({
    takes: text(checkedBy(CronExpressionConstraint)),
    default: '0 * * * * *',
    group: 'eviction',
    field: 'cron',
  }),

  /** Characters per message, counted in Unicode code points (an emoji is one). */
  MAX_MESSAGE_LENGTH: variable({
    takes: integer({ min: 1, max: 1_000_000 }),
    default: '10000',
    group: 'limits',
    field: 'maxMessageLength',
  }),

  /** Messages a conversation may hold; past it a post gets 409 conversation_full. */
  MAX_MESSAGES_PER_CONVERSATION: variable({
    takes: integer({ min: 1 }),
    default: '10000',
    group: 'limits',
    field: 'maxMessagesPerConversation',
  }),

  /** Conversations the store may hold; past it a create gets 503 capacity_exceeded. */
  MAX_CONVERSATIONS: variable({
    takes: integer({ min: 1 }),
    default: '100000',
    group: 'limits',
    field: 'maxConversations',
  }),

  /** How far a client's `timestamp` may be ahead of the server's clock (default 5 min). */
  MAX_CLOCK_SKEW_MS: variable({
    takes: integer({ min: 0 }),
    default: '300000',
    group: 'limits',
    field: 'maxClockSkewMs',
  }),

  /** How far ahead a snooze may reach (`snoozedUntil`; default 30 days). */
  SNOOZE_MAX_MS: variable({
    takes: integer({ min: 1_000 }),
    default: '2592000000',
    group: 'limits',
    field: 'snoozeMaxMs',
  }),

  /** The largest request body; past it 413 payload_too_large. */
  BODY_LIMIT: variable({
    takes: text(matching(SIZE_PATTERN, 'must be a size such as 64kb, 1mb or 65536')),
    default: '64kb',
    group: 'http',
    field: 'bodyLimitBytes',
    as: sizeInBytes,
  }),

  /**
   * How long a request waits for the store (the primary over IPC, or a Redis command, redirections
   * and retries included) before it is answered 503 store_unavailable.
   */
  STORE_TIMEOUT_MS: variable({
    takes: integer({ min: 1 }),
    default: '5000',
    group: 'store',
    field: 'timeoutMs',
  }),

  /** On SIGTERM or SIGINT: how long in-flight requests get before connections are cut. */
  SHUTDOWN_GRACE_MS: variable({
    takes: integer({ min: 0 }),
    default: '8000',
    group: 'http',
    field: 'shutdownGraceMs',
  }),

  /**
   * The least important log level written. `log` includes one access log line per request;
   * `debug` adds Nest's module and route-mapping lines.
   */
  LOG_LEVEL: variable({
    takes: oneOf(['silent', 'error', 'warn', 'log', 'debug', 'verbose']),
    default: 'log',
    group: 'observability',
    field: 'logLevel',
  }),

  /**
   * `json`: one JSON object per line; `pretty`: readable lines, prefixed with the process
   * (`[worker 2]`). The default is picked in validateConfig: a person reads a terminal, a log
   * collector reads anything else.
   * @default `pretty` when stdout is a terminal, else `json`
   */
  LOG_FORMAT: variable({
    takes: oneOf(['json', 'pretty']),
    default: (_env, { stdoutIsTTY }) => (stdoutIsTTY ? 'pretty' : 'json'),
    blankIsUnset: true,
    group: 'observability',
    field: 'logFormat',
  }),

  /**
   * Collect metrics and serve them at `/metrics` in the Prometheus format; `false` collects
   * none, and `/metrics` answers 404.
   */
  METRICS_ENABLED: variable({
    takes: flag('must be true or false'),
    default: 'true',
    group: 'observability',
    field: 'metricsEnabled',
  }),

  /**
   * Where conversations live: `memory`, in the memory of the process that owns the store (the
   * primary, or the single process), lost on restart unless SNAPSHOT_PATH is set; `redis`, a Redis
   * server or Redis Cluster shared by every instance.
   */
  STORE: variable({
    takes: oneOf(['memory', 'redis']),
    default: 'memory',
    group: 'store',
    field: 'kind',
  }),

  /**
   * With STORE=redis: the one Redis, as `redis://` or `rediss://` (TLS), with user, password
   * and database number if needed. Not with REDIS_CLUSTER_NODES. A malformed URL, or a Redis that
   * cannot be reached within 5 s, stops the start.
   */
  REDIS_URL: variable({
    takes: text(
      matching(
        /^rediss?:\/\/[^\s]+$/,
        'must be a redis:// or rediss:// URL, for example redis://127.0.0.1:6379',
      ),
      checkedBy(RedisUrlConstraint),
    ),
    default: 'redis://127.0.0.1:6379',
    group: 'redis',
    field: 'url',
  }),

  /**
   * With STORE=redis: seed nodes of a Redis Cluster (`host:port` or
   * `redis://[user:password@]host:port`, `rediss://` for TLS, comma-separated); the rest of the
   * cluster is discovered from them. Not with REDIS_URL: setting both stops the start.
   */
  REDIS_CLUSTER_NODES: variable({
    takes: text(checkedBy(ClusterNodeListConstraint)),
    default: '',
    group: 'redis',
    field: 'clusterNodes',
    as: (value): readonly ClusterNodeSeed[] => clusterNodeList(value) ?? [],
  }),

  /**
   * With STORE=redis: a create, post, delete or read receipt is acknowledged only once this many
   * replicas have it (Redis WAIT, right after the write, on the same connection); when fewer
   * confirm in time, 503 replication_timeout. 0: as soon as the master has it.
   */
  REDIS_WAIT_REPLICAS: variable({
    takes: integer({ min: 0, max: 16 }),
    default: '0',
    group: 'redis',
    field: 'waitReplicas',
  }),

  /**
   * How long a write waits for REDIS_WAIT_REPLICAS before it is answered 503 replication_timeout.
   */
  REDIS_WAIT_TIMEOUT_MS: variable({
    takes: integer({ min: 1 }),
    default: '500',
    group: 'redis',
    field: 'waitTimeoutMs',
  }),

  /**
   * The in-memory store's byte budget: message text plus what each message, conversation and kept
   * Idempotency-Key costs besides; a deleted message counts until it leaves the replay buffer
   * (EVENT_REPLAY_LIMIT) and no kept key holds it. A create or post past it is refused with 507
   * store_full. 0 (the default): derived from the old-space limit of the process that owns the
   * store (storeByteBudget; see Memory in docs/operations.md). On Redis, Redis's own `maxmemory`
   * applies instead.
   * @default half of what the old space leaves after 32 MiB for the server, at least 8 MiB
   */
  MAX_STORE_BYTES: variable({
    takes: integer({ min: 0 }),
    default: '0',
    group: 'store',
  }),

  /**
   * Event streams one process serves at most; past it a new one gets 503
   * stream_capacity_exceeded.
   */
  MAX_EVENT_STREAMS: variable({
    takes: integer({ min: 1 }),
    default: '10000',
    group: 'events',
    field: 'maxStreams',
  }),

  /**
   * Event streams one client (its API key, its customer token, or its address) may hold open in one
   * process; past it 429 too_many_streams. The customer tokens one address uses that were minted
   * without an API key hold at most 10 times this between them.
   */
  MAX_EVENT_STREAMS_PER_CLIENT: variable({
    takes: integer({ min: 1 }),
    default: '20',
    group: 'events',
    field: 'maxStreamsPerClient',
  }),

  /**
   * With STORE=redis: put in front of every key, so that several deployments (or tests) can share
   * one Redis. Every instance of one deployment must use the same.
   */
  REDIS_KEY_PREFIX: variable({
    takes: text(
      matching(
        /^[A-Za-z0-9:_.-]{0,64}$/,
        'must be at most 64 letters, digits or :_.- (no braces: they would break the hash tags)',
      ),
    ),
    default: 'chat:',
    group: 'redis',
    field: 'keyPrefix',
  }),

  /** Changes kept per conversation, so that a reconnecting event stream gets what it missed. */
  EVENT_REPLAY_LIMIT: variable({
    takes: integer({ min: 1, max: 100_000 }),
    default: '1000',
    group: 'store',
    field: 'replayLimit',
  }),

  /** How often an idle event stream gets a comment line, so that proxies keep it open. */
  SSE_HEARTBEAT_MS: variable({
    takes: integer({ min: 100 }),
    default: '15000',
    group: 'events',
    field: 'heartbeatMs',
  }),

  /**
   * Bytes an event stream may have unsent (its response's buffer plus the changes it holds while
   * it writes a replay) before it is ended; the client reconnects with Last-Event-ID and catches
   * up. A value below the largest frame one message can make is raised to it. 0 (the default):
   * the larger of 4 MiB and that frame (see Live events in docs/api.md).
   * @default the larger of 4 MiB and the largest frame of one message (6 bytes per character of MAX_MESSAGE_LENGTH, plus its fields)
   */
  SSE_MAX_BACKLOG_BYTES: variable({
    takes: integer({ min: 0 }),
    default: '0',
    group: 'events',
  }),

  /**
   * How long a typing indicator shows unless renewed: a typing event's `expiresAt` is now plus
   * this.
   */
  TYPING_TTL_MS: variable({
    takes: integer({ min: 1_000, max: 60_000 }),
    default: '5000',
    group: 'events',
    field: 'typingTtlMs',
  }),

  /**
   * How long a post's Idempotency-Key and its response are kept (default 24 h; never longer than
   * CONVERSATION_TTL_MS). A create's key lives as long as its conversation.
   */
  IDEMPOTENCY_TTL_MS: variable({
    takes: integer({ min: 1_000 }),
    default: '86400000',
    group: 'idempotency',
  }),

  /**
   * Origins that browsers may call the API from (CORS), comma-separated, such as
   * `https://app.example.com,http://localhost:5173`. None: no CORS headers at all.
   */
  CORS_ORIGINS: variable({
    takes: text(checkedBy(OriginListConstraint)),
    default: '',
    group: 'http',
    field: 'corsOrigins',
    as: (value): readonly string[] => originList(value) ?? [],
  }),

  /**
   * A client must send a request's headers within this, or gets 408 and is cut off (checked every
   * second).
   */
  HEADERS_TIMEOUT_MS: variable({
    takes: integer({ min: 1_000 }),
    default: '10000',
    group: 'http',
  }),

  /** A client must send a whole request within this (an event stream's response may last). */
  REQUEST_TIMEOUT_MS: variable({
    takes: integer({ min: 1_000 }),
    default: '30000',
    group: 'http',
    field: 'requestTimeoutMs',
  }),

  /** How long an idle keep-alive connection stays open. */
  KEEP_ALIVE_TIMEOUT_MS: variable({
    takes: integer({ min: 0 }),
    default: '5000',
    group: 'http',
    field: 'keepAliveTimeoutMs',
  }),

  /**
   * In-memory store only: where it is saved on a graceful stop (a temporary file, fsync, rename)
   * and read back at start, so that a planned restart keeps every conversation. None by default.
   */
  SNAPSHOT_PATH: variable({
    takes: text(),
    default: '',
    group: 'snapshot',
    field: 'path',
  }),

  /**
   * Keys for trusted callers (the business's backend, the agent console), comma-separated, 16 to
   * 256 visible ASCII characters each, sent as `Authorization: Bearer <key>`. None: access control
   * is off, and the server says so at start.
   */
  API_KEYS: variable({
    takes: text(checkedBy(ApiKeyListConstraint)),
    default: '',
    group: 'access',
    field: 'apiKeys',
    as: (value): readonly string[] => apiKeyList(value) ?? [],
  }),

  /**
   * With API_KEYS set: anyone may open a conversation (and gets its customer token, which counts
   * against the address using it too: see RATE_LIMIT_MAX).
   */
  PUBLIC_CONVERSATIONS: variable({
    takes: flag(),
    default: 'false',
    group: 'access',
    field: 'publicConversations',
  }),

  /** The window of the rate limits. */
  RATE_LIMIT_WINDOW_MS: variable({
    takes: integer({ min: 1_000 }),
    default: '60000',
    group: 'rateLimits',
    field: 'windowMs',
  }),

  /**
   * Requests per window for each customer token and each client address without a valid
   * credential; 0: no limit. The customer tokens one address uses that were minted without an API
   * key get at most 10 times this between them. Without API_KEYS (the open development mode) there is no limit unless
   * this is set: no one there can be told apart, and a limit would only refuse test suites, load
   * tests and every user behind an untrusted proxy.
   * @default `600` with API_KEYS set, else `0`
   */
  RATE_LIMIT_MAX: variable({
    takes: integer({ min: 0 }),
    default: (env) => (apiKeyList(String(env.API_KEYS ?? ''))?.length ? '600' : '0'),
    group: 'rateLimits',
    field: 'perClient',
  }),

  /** Requests per window for each API key; 0: no limit. */
  RATE_LIMIT_API_KEY_MAX: variable({
    takes: integer({ min: 0 }),
    default: '6000',
    group: 'rateLimits',
    field: 'perApiKey',
  }),

  /**
   * Which proxies to believe about the client's address (X-Forwarded-For), as Express's
   * `trust proxy`: `true`, a hop count, or addresses such as `loopback`. Set it behind a proxy or
   * load balancer, or every client is counted as the proxy's one address.
   */
  TRUST_PROXY: variable({
    takes: text(
      matching(
        /^(true|false|\d+|[A-Za-z0-9.:/, -]+)$/,
        'must be true, false, a hop count or a list of addresses (see Express "trust proxy")',
      ),
    ),
    default: 'false',
    group: 'http',
    field: 'trustProxy',
    as: trustProxySetting,
  }),

  /** The live console at `/`; `false` answers 404 there. */
  CONSOLE_ENABLED: variable({
    takes: flag(),
    default: 'true',
    group: 'http',
    field: 'consoleEnabled',
  }),

  /** Webhook endpoints in all (`POST /api/webhooks` past it: 409 webhook_limit_reached). */
  WEBHOOK_MAX_ENDPOINTS: variable({
    takes: integer({ min: 1, max: 1_000 }),
    default: '20',
    group: 'webhooks',
    field: 'maxEndpoints',
  }),

  /** How long one delivery attempt may take, connecting to the last byte of the answer. */
  WEBHOOK_TIMEOUT_MS: variable({
    takes: integer({ min: 1 }),
    default: '15000',
    group: 'webhooks',
    field: 'timeoutMs',
  }),

  /**
   * The delays between a delivery's attempts after the first (sent at once), in seconds, each
   * taken ±20% at random; decimals allowed (tests run the schedule in milliseconds). Its length
   * plus one is how many attempts a delivery gets.
   */
  WEBHOOK_RETRY_SCHEDULE: variable({
    takes: text(
      matching(
        /^\s*\d+(\.\d+)?(\s*,\s*\d+(\.\d+)?)*\s*$/,
        'must be a comma-separated list of seconds such as 5,300,1800',
      ),
    ),
    default: '5,300,1800,7200,18000,36000,36000',
    group: 'webhooks',
    field: 'retryScheduleMs',
    as: (value): readonly number[] =>
      value.split(',').map((seconds) => Math.round(Number(seconds.trim()) * 1000)),
  }),

  /**
   * With no 2xx answer for this long while a delivery has used up its attempts, an endpoint is
   * disabled (reason `failing`). Default 5 days.
   */
  WEBHOOK_DISABLE_AFTER_MS: variable({
    takes: integer({ min: 0 }),
    default: '432000000',
    group: 'webhooks',
    field: 'disableAfterMs',
  }),

  /** Attempts in flight at once per endpoint, across every process and instance. */
  WEBHOOK_MAX_IN_FLIGHT: variable({
    takes: integer({ min: 1, max: 1_000 }),
    default: '8',
    group: 'webhooks',
    field: 'maxInFlight',
  }),

  /** Deliveries an endpoint may have waiting; at it the endpoint is disabled (`backlog`). */
  WEBHOOK_MAX_PENDING: variable({
    takes: integer({ min: 1 }),
    default: '100000',
    group: 'webhooks',
    field: 'maxPending',
  }),

  /**
   * The bytes of event bodies the enabled endpoints may have waiting, apart from
   * MAX_STORE_BYTES; when a delivery would pass it, the endpoint holding the most is disabled
   * (`backlog`).
   */
  WEBHOOK_MAX_BYTES: variable({
    takes: text(matching(SIZE_PATTERN, 'must be a size such as 64mb or 67108864')),
    default: '64mb',
    group: 'webhooks',
    field: 'maxBytes',
    as: sizeInBytes,
  }),

  /** How long deliveries and their attempts stay in the log, for retry and recover (72 h). */
  WEBHOOK_RETENTION_MS: variable({
    takes: integer({ min: 1_000 }),
    default: '259200000',
    group: 'webhooks',
    field: 'retentionMs',
  }),

  /** Succeeded deliveries kept in the log per endpoint, and as many failed ones. */
  WEBHOOK_LOG_LIMIT: variable({
    takes: integer({ min: 1, max: 100_000 }),
    default: '1000',
    group: 'webhooks',
    field: 'logLimit',
  }),

  /**
   * How often the reconcile pass queues changes that were applied but not queued (a process
   * that died between the two), one instance at a time.
   */
  WEBHOOK_RECONCILE_MS: variable({
    takes: integer({ min: 100 }),
    default: '5000',
    group: 'webhooks',
    field: 'reconcileMs',
  }),

  /**
   * Lets deliveries reach loopback, private, shared and link-local addresses (development and
   * tests, whose receivers listen on 127.0.0.1). Cloud-metadata addresses stay refused.
   */
  WEBHOOK_ALLOW_PRIVATE_NETWORKS: variable({
    takes: flag(),
    default: 'false',
    group: 'webhooks',
    field: 'allowPrivateNetworks',
  }),

  /** How long `GET /health/ready` waits for the store before answering 503. */
  HEALTH_TIMEOUT_MS: variable({
    takes: integer({ min: 1 }),
    default: '1000',
    group: 'observability',
    field: 'healthTimeoutMs',
  }),
} satisfies Record<string, { readonly group: SettingsGroup | 'none' }>;

export type AppConfig = ValuesOf<typeof VARIABLES>;

const readEnvironment = environmentReader(VARIABLES);

/**
 * Reads the declared variables from `env`, applies defaults and validates them.
 * Throws a ConfigValidationError naming every bad variable. `stdoutIsTTY` picks LOG_FORMAT's
 * default (a cluster's workers share the primary's stdout, so they pick the same).
 */
export function validateConfig(
  env: Record<string, unknown>,
  { stdoutIsTTY = Boolean(process.stdout.isTTY) }: { stdoutIsTTY?: boolean } = {},
): AppConfig {
  const { values, problems } = readEnvironment(env, { stdoutIsTTY });
  const given = (name: string) =>
    typeof env[name] === 'string' && (env[name] as string).trim() !== '';
  if (given('REDIS_URL') && given('REDIS_CLUSTER_NODES')) {
    problems.push(
      'REDIS_URL and REDIS_CLUSTER_NODES are both set: set REDIS_URL for one Redis, or REDIS_CLUSTER_NODES for a Redis Cluster',
    );
  }
  if (problems.length > 0) {
    throw new ConfigValidationError(problems);
  }
  return Object.freeze(values);
}

/**
 * The validated configuration, read from process.env once, injectable as `@Inject(appConfig.KEY)`;
 * what is parsed or derived from it is in app.settings.ts.
 */
export const appConfig = registerAs('app', (): AppConfig => validateConfig(process.env));
