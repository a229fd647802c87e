import { availableParallelism } from 'node:os';
import { getHeapStatistics } from 'node:v8';
import { AppConfig, SettingsGroup, VARIABLES } from './app.config';
import { Declarations } from './env-declaration';

/*
 * The validated configuration (app.config.ts), turned once into typed groups by concern. A
 * group's plain fields are the variables declared into it (app.config.ts: `group` and `field`,
 * read by `as` when it has one); what is computed from several settings or from the process is
 * derived beside its group, here and nowhere else. Each group is injectable by its class (see
 * AppConfigModule).
 */

type Declared = typeof VARIABLES;

/** The fields that the variables declared into group G fill, with their types. */
export type DeclaredFields<G extends SettingsGroup> = {
  readonly [
    N in keyof Declared as Declared[N]['group'] extends G
      ? NonNullable<Declared[N]['field']>
      : never
  ]: ReturnType<NonNullable<Declared[N]['as']>>;
};

/** The base class of group G's settings: the fields its variables fill. */
function declaredFields<G extends SettingsGroup>(_group: G): abstract new () => DeclaredFields<G> {
  abstract class Fields {}
  return Fields as abstract new () => DeclaredFields<G>;
}

/** What group G computes from the configuration: its other fields, never a declared one. */
type Derivation<G extends SettingsGroup> = (
  config: AppConfig,
  declared: DeclaredFields<G>,
) => Omit<AppSettings[G], keyof DeclaredFields<G>> & {
  readonly [field in keyof DeclaredFields<G>]?: never;
};

/** How many processes serve: the bootstrap's concern. */
export abstract class ClusterSettings extends declaredFields('cluster') {
  /** Worker processes; WORKERS=-1 (the default) is one per core. 0: a single process. */
  readonly workers: number;
}

const cluster: Derivation<'cluster'> = (config) => ({
  workers: config.WORKERS < 0 ? availableParallelism() : config.WORKERS,
});

/** The listening socket, its timeouts, and what every response carries. */
export abstract class HttpSettings extends declaredFields('http') {
  /**
   * HEADERS_TIMEOUT_MS, at most REQUEST_TIMEOUT_MS: Node requires the headers' limit to be
   * within the whole request's.
   */
  readonly headersTimeoutMs: number;
}

const http: Derivation<'http'> = (config) => ({
  headersTimeoutMs: Math.min(config.HEADERS_TIMEOUT_MS, config.REQUEST_TIMEOUT_MS),
});

/** The store, whichever it is, and the in-memory store's own sizes. */
export abstract class StoreSettings extends declaredFields('store') {
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

const store: Derivation<'store'> = (config) => ({
  byteBudget: storeByteBudget(config.MAX_STORE_BYTES),
  generationMs: generationWidth(config.CONVERSATION_TTL_MS),
});

/** With STORE=redis: where Redis is and how writes wait for replicas. */
export abstract class RedisSettings extends declaredFields('redis') {
  /** REDIS_URL without its credentials (`redis://host:6379/2`), for the start message. */
  readonly address: string;
}

const redis: Derivation<'redis'> = (config) => ({ address: redisAddress(config.REDIS_URL) });

/** Who may call. */
export abstract class AccessSettings extends declaredFields('access') {
  /** Whether access control is on: API_KEYS holds at least one key. */
  readonly enabled: boolean;
}

const access: Derivation<'access'> = (_config, { apiKeys }) => ({ enabled: apiKeys.length > 0 });

/** The rate limits; 0 is "no limit" for that kind of caller. */
export abstract class RateLimitSettings extends declaredFields('rateLimits') {}

/** What one conversation and the whole store may hold, and how far a client clock may run ahead. */
export abstract class LimitSettings extends declaredFields('limits') {}

/**
 * The Idempotency-Key time limits, all of them. A create's key has none of its own: it is
 * kept with its conversation and lives as long as the conversation does.
 */
export abstract class IdempotencySettings extends declaredFields('idempotency') {
  /**
   * How long a post's key (and the answer it replays) is kept: IDEMPOTENCY_TTL_MS, at most
   * CONVERSATION_TTL_MS, so that a key never outlives the inactivity limit of the
   * conversation it was used on.
   */
  readonly postKeyTtlMs: number;
}

const idempotency: Derivation<'idempotency'> = (config) => ({
  postKeyTtlMs: Math.min(config.IDEMPOTENCY_TTL_MS, config.CONVERSATION_TTL_MS),
});

/** Event streams and typing indicators. */
export abstract class EventSettings extends declaredFields('events') {
  /**
   * What a stream may have unsent before it is ended: SSE_MAX_BACKLOG_BYTES, at least the
   * largest frame of one message (see maxBacklogBytes).
   */
  readonly maxBacklogBytes: number;
}

const events: Derivation<'events'> = (config) => ({
  maxBacklogBytes: maxBacklogBytes(config.SSE_MAX_BACKLOG_BYTES, config.MAX_MESSAGE_LENGTH),
});

/** The eviction job, run by the process that owns the store. */
export abstract class EvictionSettings extends declaredFields('eviction') {}

/** The in-memory store's snapshot. */
export abstract class SnapshotSettings extends declaredFields('snapshot') {}

/** Logs, metrics and probes. */
export abstract class ObservabilitySettings extends declaredFields('observability') {}

/** Webhook endpoints, their queues and deliveries. */
export abstract class WebhookSettings extends declaredFields('webhooks') {}

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
  readonly webhooks: WebhookSettings;
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
  webhooks: WebhookSettings,
} as const satisfies {
  [group in keyof AppSettings]: abstract new () => AppSettings[group];
} & Record<SettingsGroup, unknown>;

/** The groups that compute fields beyond their declared ones, and how. */
export const DERIVATIONS: {
  readonly [
    G in SettingsGroup as keyof Omit<AppSettings[G], keyof DeclaredFields<G>> extends never
      ? never
      : G
  ]: Derivation<G>;
} = { cluster, http, store, redis, access, idempotency, events };

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

/** The fields that the variables declared into `group` fill, from a validated configuration. */
export function declaredFieldsOf(config: AppConfig, group: SettingsGroup): Record<string, unknown> {
  const fields: Record<string, unknown> = {};
  for (const [name, declaration] of Object.entries(VARIABLES as Declarations)) {
    if (declaration.group === group && declaration.field !== undefined) {
      const value = config[name as keyof AppConfig];
      fields[declaration.field] = declaration.as ? declaration.as(value) : value;
    }
  }
  return fields;
}

function resolveSettings(config: AppConfig): AppSettings {
  // Each derivation is typed for its own group's fields; `declared` holds that group's.
  const derivations: Partial<
    Record<SettingsGroup, (config: AppConfig, declared: never) => object>
  > = DERIVATIONS;
  const settings: Partial<Record<SettingsGroup, object>> = {};
  for (const group of Object.keys(SETTINGS_GROUPS) as SettingsGroup[]) {
    const declared = declaredFieldsOf(config, group);
    settings[group] = Object.freeze({
      ...declared,
      ...derivations[group]?.(config, declared as never),
    });
  }
  return Object.freeze(settings) as AppSettings;
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
