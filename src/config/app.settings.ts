import { availableParallelism } from 'node:os';
import { getHeapStatistics } from 'node:v8';
import { parse as parseSize } from 'bytes';
import { AppConfig, apiKeyList, ClusterNodeSeed, clusterNodeList, originList } from './app.config';

/*
 * The validated configuration (app.config.ts), turned once into typed groups by concern.
 * Every value parsed from a string or derived from other settings is computed here and
 * nowhere else; each group is injectable by its class (see AppConfigModule).
 */

/** A size such as `64kb` in bytes, read as body-parser reads its `limit` (the same function). */
function sizeInBytes(size: string): number {
  const bytes = parseSize(size);
  if (bytes === null) {
    throw new Error(`not a size: ${size}`); // unreachable: the config validates the form
  }
  return bytes;
}

/** How many processes serve: the bootstrap's concern. */
export abstract class ClusterSettings {
  /** Worker processes; WORKERS=-1 (the default) is one per core. 0: a single process. */
  readonly workers: number;
}

/** The listening socket, its timeouts, and what every response carries. */
export abstract class HttpSettings {
  readonly port: number;
  readonly host: string;
  readonly requestTimeoutMs: number;
  /**
   * HEADERS_TIMEOUT_MS, at most REQUEST_TIMEOUT_MS: Node requires the headers' limit to be
   * within the whole request's.
   */
  readonly headersTimeoutMs: number;
  readonly keepAliveTimeoutMs: number;
  /** Graceful stop: how long in-flight requests get before connections are cut. */
  readonly shutdownGraceMs: number;
  /** Largest request body in bytes: BODY_LIMIT (`64kb`, `1mb`, a byte count) as body-parser reads it. */
  readonly bodyLimitBytes: number;
  /** CORS_ORIGINS as a list; empty: no CORS at all. */
  readonly corsOrigins: readonly string[];
  /** TRUST_PROXY as Express's `trust proxy` takes it (see trustProxySetting). */
  readonly trustProxy: boolean | number | string;
  readonly consoleEnabled: boolean;
}

/** The store, whichever it is, and the in-memory store's own sizes. */
export abstract class StoreSettings {
  readonly kind: 'memory' | 'redis';
  /** How long a call waits for the store (the primary over IPC, or a Redis command). */
  readonly timeoutMs: number;
  /** Changes kept per conversation for event-stream replay (EVENT_REPLAY_LIMIT). */
  readonly replayLimit: number;
  /** The in-memory store's byte budget (see storeByteBudget). */
  readonly byteBudget: number;
  /**
   * The width of the in-memory store's activity generations: about 30 per
   * CONVERSATION_TTL_MS, so that a sweep walks at most a thirtieth of what is stored beyond
   * what it evicts, and none narrower than a second, so that a short TTL does not make a
   * generation per write (see ActivityIndex).
   */
  readonly generationMs: number;
}

/** With STORE=redis: where Redis is and how writes wait for replicas. */
export abstract class RedisSettings {
  /** One Redis (REDIS_URL), credentials included. */
  readonly url: string;
  /** REDIS_URL without its credentials (`redis://host:6379/2`), for the start message. */
  readonly address: string;
  /** The seeds of a Redis Cluster (REDIS_CLUSTER_NODES); empty: one Redis at `url`. */
  readonly clusterNodes: readonly ClusterNodeSeed[];
  readonly keyPrefix: string;
  readonly waitReplicas: number;
  readonly waitTimeoutMs: number;
}

/** Who may call. */
export abstract class AccessSettings {
  /** The keys of API_KEYS; none: access control is off. */
  readonly apiKeys: readonly string[];
  /** Whether access control is on: API_KEYS holds at least one key. */
  readonly enabled: boolean;
  readonly publicConversations: boolean;
}

/** The rate limits; 0 is "no limit" for that kind of caller. */
export abstract class RateLimitSettings {
  readonly windowMs: number;
  /** Per client address and per customer token (RATE_LIMIT_MAX, its default derived there). */
  readonly perClient: number;
  /** Per API key (RATE_LIMIT_API_KEY_MAX). */
  readonly perApiKey: number;
}

/** What one conversation and the whole store may hold, and how far a client clock may run ahead. */
export abstract class LimitSettings {
  readonly maxMessageLength: number;
  readonly maxMessagesPerConversation: number;
  readonly maxConversations: number;
  readonly maxClockSkewMs: number;
}

/**
 * The Idempotency-Key time limits, all of them. A create's key has none of its own: it is
 * kept with its conversation and lives as long as the conversation does.
 */
export abstract class IdempotencySettings {
  /**
   * How long a post's key (and the answer it replays) is kept: IDEMPOTENCY_TTL_MS, at most
   * CONVERSATION_TTL_MS, so that a key never outlives the inactivity limit of the
   * conversation it was used on.
   */
  readonly postKeyTtlMs: number;
}

/** Event streams and typing indicators. */
export abstract class EventSettings {
  /** Streams one process serves at most. */
  readonly maxStreams: number;
  /** Streams one client (API key, customer token or address) holds in one process. */
  readonly maxStreamsPerClient: number;
  readonly heartbeatMs: number;
  /**
   * What a stream may have unsent before it is ended: SSE_MAX_BACKLOG_BYTES, at least the
   * largest frame of one message (see maxBacklogBytes).
   */
  readonly maxBacklogBytes: number;
  /** A typing event's `expiresAt` is now plus this. */
  readonly typingTtlMs: number;
}

/** The eviction job, run by the process that owns the store. */
export abstract class EvictionSettings {
  readonly cron: string;
  /** A conversation with no activity for this long is evicted. */
  readonly conversationTtlMs: number;
}

/** The in-memory store's snapshot. */
export abstract class SnapshotSettings {
  /** Where it is written on a graceful stop and read at start; '' for none. */
  readonly path: string;
}

/** Logs, metrics and probes. */
export abstract class ObservabilitySettings {
  readonly logLevel: AppConfig['LOG_LEVEL'];
  readonly logFormat: AppConfig['LOG_FORMAT'];
  readonly metricsEnabled: boolean;
  /** How long /health/ready waits for the store. */
  readonly healthTimeoutMs: number;
}

/** Every group; each is also injectable on its own. */
export abstract class AppSettings {
  readonly cluster: ClusterSettings;
  readonly http: HttpSettings;
  readonly store: StoreSettings;
  readonly redis: RedisSettings;
  readonly access: AccessSettings;
  readonly rateLimits: RateLimitSettings;
  readonly limits: LimitSettings;
  readonly idempotency: IdempotencySettings;
  readonly events: EventSettings;
  readonly eviction: EvictionSettings;
  readonly snapshot: SnapshotSettings;
  readonly observability: ObservabilitySettings;
}

/** The groups, as AppConfigModule provides them: each class is its own injection token. */
export const SETTINGS_GROUPS = {
  cluster: ClusterSettings,
  http: HttpSettings,
  store: StoreSettings,
  redis: RedisSettings,
  access: AccessSettings,
  rateLimits: RateLimitSettings,
  limits: LimitSettings,
  idempotency: IdempotencySettings,
  events: EventSettings,
  eviction: EvictionSettings,
  snapshot: SnapshotSettings,
  observability: ObservabilitySettings,
} as const satisfies { [group in keyof AppSettings]: abstract new () => AppSettings[group] };

/** TRUST_PROXY as Express's `trust proxy` setting takes it: a boolean, a hop count or addresses. */
export function trustProxySetting(value: string): boolean | number | string {
  if (value === 'true' || value === 'false') {
    return value === 'true';
  }
  return /^\d+$/.test(value) ? Number(value) : value;
}

/** What the server needs of its old space besides the store: Nest, the runtime, caches. */
const SERVER_HEAP_BYTES = 32 * 1024 * 1024;
/** The least default budget, for a heap too small to leave room by the rule below. */
const MIN_STORE_BYTES = 8 * 1024 * 1024;
const MIB = 1024 * 1024;
/**
 * The largest default semi-space among the Node versions the server runs on (Node 24's; Node 26
 * uses 32 MiB, Node 20 16 MiB). Used only when no flag names the old space or the semi-space,
 * so the old space is never taken for larger than it is.
 */
const DEFAULT_SEMI_SPACE_BYTES = 64 * MIB;

/**
 * The value in MiB of a V8 size flag given to this process. Node reads NODE_OPTIONS first and
 * its command line after, so a flag on the command line wins over one in NODE_OPTIONS, and of
 * two in one place the last.
 */
function v8SizeFlag(
  name: string,
  argv: readonly string[],
  nodeOptions: string,
): number | undefined {
  const words = [...nodeOptions.split(/\s+/), ...argv];
  const pattern = new RegExp(`^--${name.replace(/-/g, '[-_]')}(?:=(\\d+))?$`);
  let found: number | undefined;
  words.forEach((word, i) => {
    const match = pattern.exec(word);
    const value = match && (match[1] ?? words[i + 1]);
    if (value && /^\d+$/.test(value)) {
      found = Number(value);
    }
  });
  return found;
}

/**
 * The old space's limit of this process: where the store's records live. V8's heap limit also
 * counts the young generation (three semi-spaces), whose default size changes between Node
 * versions (48 MiB in all on Node 20, 192 on Node 24, 96 on Node 26), so the limit alone says
 * little: `--max-old-space-size` is read when given, else the young generation is taken off the
 * heap limit.
 */
export function oldSpaceLimit(
  argv: readonly string[] = process.execArgv,
  nodeOptions: string = process.env.NODE_OPTIONS ?? '',
  heapLimit: number = getHeapStatistics().heap_size_limit,
): number {
  const oldSpace = v8SizeFlag('max-old-space-size', argv, nodeOptions);
  if (oldSpace !== undefined) {
    return oldSpace * MIB;
  }
  const semiSpace = v8SizeFlag('max-semi-space-size', argv, nodeOptions);
  return heapLimit - 3 * (semiSpace !== undefined ? semiSpace * MIB : DEFAULT_SEMI_SPACE_BYTES);
}

/**
 * The in-memory store's byte budget: MAX_STORE_BYTES, or half of what the old space of this
 * process (the one that owns the store) leaves once 32 MiB are set aside for the server itself;
 * the other half is room for requests (a long history read is copied while it is sent) and for
 * the garbage collector.
 */
export function storeByteBudget(maxStoreBytes: number, oldSpace: number = oldSpaceLimit()): number {
  return maxStoreBytes || Math.max(MIN_STORE_BYTES, Math.floor((oldSpace - SERVER_HEAP_BYTES) / 2));
}

/** SSE_MAX_BACKLOG_BYTES's default, unless one message's frame is larger. */
const DEFAULT_BACKLOG_BYTES = 4 * 1024 * 1024;

/**
 * The largest event-stream frame one message can make: `message.created` with every number at
 * its longest, and each character of the content escaped by JSON as `\u00XX`, the most bytes
 * one code point can take. It mirrors the frame and the message JSON that event-streams.service.ts
 * writes; a spec there holds the two together.
 */
export function largestMessageFrameBytes(maxMessageLength: number): number {
  const longest = String(Number.MAX_SAFE_INTEGER);
  const id = '00000000-0000-4000-8000-000000000000';
  const json =
    `{"id":"${id}","conversationId":"${id}","sender":"customer","content":"",` +
    `"timestamp":${longest},"seq":${longest},"createdAt":${longest}}`;
  return `id: ${longest}\nevent: message.created\ndata: ${json}\n\n`.length + 6 * maxMessageLength;
}

/**
 * What one event stream may leave unsent: SSE_MAX_BACKLOG_BYTES (0: 4 MiB), never less than the
 * largest frame one message can make, so that a client that reads is never ended for one message.
 */
function maxBacklogBytes(setting: number, maxMessageLength: number): number {
  return Math.max(setting || DEFAULT_BACKLOG_BYTES, largestMessageFrameBytes(maxMessageLength));
}

/** About 30 activity generations per TTL, none narrower than a second (see StoreSettings). */
function generationWidth(ttlMs: number): number {
  return Math.max(1_000, Math.ceil(ttlMs / 30));
}

/** REDIS_URL without user and password. */
function redisAddress(value: string): string {
  const url = new URL(value);
  return `${url.protocol}//${url.host}${url.pathname.length > 1 ? url.pathname : ''}`;
}

function resolveSettings(config: AppConfig): AppSettings {
  const apiKeys = apiKeyList(config.API_KEYS) ?? [];
  const settings: AppSettings = {
    cluster: {
      workers: config.WORKERS < 0 ? availableParallelism() : config.WORKERS,
    },
    http: {
      port: config.PORT,
      host: config.HOST,
      requestTimeoutMs: config.REQUEST_TIMEOUT_MS,
      headersTimeoutMs: Math.min(config.HEADERS_TIMEOUT_MS, config.REQUEST_TIMEOUT_MS),
      keepAliveTimeoutMs: config.KEEP_ALIVE_TIMEOUT_MS,
      shutdownGraceMs: config.SHUTDOWN_GRACE_MS,
      bodyLimitBytes: sizeInBytes(config.BODY_LIMIT),
      corsOrigins: originList(config.CORS_ORIGINS) ?? [],
      trustProxy: trustProxySetting(config.TRUST_PROXY),
      consoleEnabled: config.CONSOLE_ENABLED,
    },
    store: {
      kind: config.STORE,
      timeoutMs: config.STORE_TIMEOUT_MS,
      replayLimit: config.EVENT_REPLAY_LIMIT,
      byteBudget: storeByteBudget(config.MAX_STORE_BYTES),
      generationMs: generationWidth(config.CONVERSATION_TTL_MS),
    },
    redis: {
      url: config.REDIS_URL,
      address: redisAddress(config.REDIS_URL),
      clusterNodes: clusterNodeList(config.REDIS_CLUSTER_NODES) ?? [],
      keyPrefix: config.REDIS_KEY_PREFIX,
      waitReplicas: config.REDIS_WAIT_REPLICAS,
      waitTimeoutMs: config.REDIS_WAIT_TIMEOUT_MS,
    },
    access: {
      apiKeys,
      enabled: apiKeys.length > 0,
      publicConversations: config.PUBLIC_CONVERSATIONS,
    },
    rateLimits: {
      windowMs: config.RATE_LIMIT_WINDOW_MS,
      perClient: config.RATE_LIMIT_MAX,
      perApiKey: config.RATE_LIMIT_API_KEY_MAX,
    },
    limits: {
      maxMessageLength: config.MAX_MESSAGE_LENGTH,
      maxMessagesPerConversation: config.MAX_MESSAGES_PER_CONVERSATION,
      maxConversations: config.MAX_CONVERSATIONS,
      maxClockSkewMs: config.MAX_CLOCK_SKEW_MS,
    },
    idempotency: {
      postKeyTtlMs: Math.min(config.IDEMPOTENCY_TTL_MS, config.CONVERSATION_TTL_MS),
    },
    events: {
      maxStreams: config.MAX_EVENT_STREAMS,
      maxStreamsPerClient: config.MAX_EVENT_STREAMS_PER_CLIENT,
      heartbeatMs: config.SSE_HEARTBEAT_MS,
      maxBacklogBytes: maxBacklogBytes(config.SSE_MAX_BACKLOG_BYTES, config.MAX_MESSAGE_LENGTH),
      typingTtlMs: config.TYPING_TTL_MS,
    },
    eviction: {
      cron: config.EVICTION_CRON,
      conversationTtlMs: config.CONVERSATION_TTL_MS,
    },
    snapshot: {
      path: config.SNAPSHOT_PATH,
    },
    observability: {
      logLevel: config.LOG_LEVEL,
      logFormat: config.LOG_FORMAT,
      metricsEnabled: config.METRICS_ENABLED,
      healthTimeoutMs: config.HEALTH_TIMEOUT_MS,
    },
  };
  for (const group of Object.values(settings)) {
    Object.freeze(group);
  }
  return Object.freeze(settings);
}

const resolved = new WeakMap<AppConfig, AppSettings>();

/**
 * The settings of a validated configuration, resolved on first use and the same object
 * after that: the bootstrap, the injected groups and anything given the configuration itself
 * read one resolution.
 */
export function settingsOf(config: AppConfig): AppSettings {
  let settings = resolved.get(config);
  if (!settings) {
    settings = resolveSettings(config);
    resolved.set(config, settings);
  }
  return settings;
}
