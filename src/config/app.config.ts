import { registerAs } from '@nestjs/config';
import { plainToInstance, Transform } from 'class-transformer';
import {
  IsBoolean,
  IsIn,
  IsInt,
  IsString,
  Matches,
  Max,
  Min,
  ValidationError,
  validateSync,
  Validate,
  ValidateIf,
  ValidatorConstraint,
  ValidatorConstraintInterface,
} from 'class-validator';
import { validateCronExpression } from 'cron';

/** Empty strings count as "not set", so `PORT=` falls back to the default like an unset variable. */
const orDefault = (fallback: string) =>
  Transform(({ value }: { value: unknown }) =>
    value === undefined || value === '' ? fallback : String(value).trim(),
  );

/**
 * Integers are parsed strictly: `3000abc`, `1e3` and `12.5` are rejected rather than truncated.
 * The default may depend on the other variables (given as the raw environment).
 */
const int = (fallback: string | ((env: Record<string, unknown>) => string)) =>
  Transform(({ value, obj }: { value: unknown; obj: Record<string, unknown> }) => {
    const raw =
      value === undefined || value === ''
        ? typeof fallback === 'string'
          ? fallback
          : fallback(obj)
        : String(value).trim();
    return /^-?\d+$/.test(raw) ? Number(raw) : raw;
  });

/** Booleans are `true` or `false` (any case); anything else is left as is and rejected. */
const bool = (fallback: string) =>
  Transform(({ value }: { value: unknown }) => {
    const raw = (value === undefined || value === '' ? fallback : String(value))
      .trim()
      .toLowerCase();
    return raw === 'true' ? true : raw === 'false' ? false : raw;
  });

@ValidatorConstraint({ name: 'cronExpression' })
class CronExpressionConstraint implements ValidatorConstraintInterface {
  validate(value: unknown): boolean {
    return typeof value === 'string' && validateCronExpression(value).valid;
  }
  defaultMessage(): string {
    return 'must be a valid cron expression, for example "0 * * * * *" (every minute)';
  }
}

@ValidatorConstraint({ name: 'redisUrl' })
class RedisUrlConstraint implements ValidatorConstraintInterface {
  validate(value: unknown): boolean {
    if (typeof value !== 'string') {
      return false;
    }
    try {
      const url = new URL(value);
      return Boolean(url.hostname) && (url.pathname === '' || /^\/\d{0,2}$/.test(url.pathname));
    } catch {
      return false;
    }
  }
  defaultMessage(): string {
    return 'must be a URL with a host, and at most a database number as its path (redis://host:6379/0)';
  }
}

@ValidatorConstraint({ name: 'originList' })
class OriginListConstraint implements ValidatorConstraintInterface {
  validate(value: unknown): boolean {
    return typeof value === 'string' && originList(value) !== null;
  }
  defaultMessage(): string {
    return 'must be a comma-separated list of origins such as https://app.example.com (scheme, host and optional port, nothing else)';
  }
}

/** The origins of CORS_ORIGINS, or null when one is not an origin. */
export function originList(value: string): string[] | null {
  const origins = value
    .split(',')
    .map((origin) => origin.trim())
    .filter(Boolean);
  for (const origin of origins) {
    try {
      if (new URL(origin).origin !== origin) {
        return null;
      }
    } catch {
      return null;
    }
  }
  return origins;
}

@ValidatorConstraint({ name: 'apiKeyList' })
class ApiKeyListConstraint implements ValidatorConstraintInterface {
  validate(value: unknown): boolean {
    return typeof value === 'string' && apiKeyList(value) !== null;
  }
  defaultMessage(): string {
    return 'must be a comma-separated list of keys, each 16 to 256 visible ASCII characters other than a comma';
  }
}

/** The keys of API_KEYS (none when empty), or null when one is too short or has odd characters. */
export function apiKeyList(value: string): string[] | null {
  const keys = value
    .split(',')
    .map((key) => key.trim())
    .filter(Boolean);
  return keys.every((key) => /^[\x21-\x2b\x2d-\x7e]{16,256}$/.test(key)) ? keys : null;
}

/** One seed node of REDIS_CLUSTER_NODES. */
export interface ClusterNodeSeed {
  host: string;
  port: number;
  username?: string;
  password?: string;
  tls: boolean;
}

/**
 * The seeds of REDIS_CLUSTER_NODES (`host:port` or `redis://[user:password@]host:port`,
 * `rediss://` for TLS, comma-separated); null when one is malformed, [] when empty.
 */
export function clusterNodeList(value: string): ClusterNodeSeed[] | null {
  const seeds: ClusterNodeSeed[] = [];
  for (const entry of value
    .split(',')
    .map((item) => item.trim())
    .filter(Boolean)) {
    let url: URL;
    try {
      url = new URL(/^rediss?:\/\//.test(entry) ? entry : `redis://${entry}`);
    } catch {
      return null;
    }
    const port = Number(url.port);
    if (
      !url.hostname ||
      !url.port ||
      port < 1 ||
      port > 65_535 ||
      !['', '/'].includes(url.pathname)
    ) {
      return null;
    }
    seeds.push({
      host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
      port,
      ...(url.username ? { username: decodeURIComponent(url.username) } : {}),
      ...(url.password ? { password: decodeURIComponent(url.password) } : {}),
      tls: url.protocol === 'rediss:',
    });
  }
  return seeds;
}

@ValidatorConstraint({ name: 'clusterNodeList' })
class ClusterNodeListConstraint implements ValidatorConstraintInterface {
  validate(value: unknown): boolean {
    return typeof value === 'string' && (clusterNodeList(value)?.length ?? 0) > 0;
  }
  defaultMessage(): string {
    return 'must be a comma-separated list of seed nodes: host:port, or redis://[user:password@]host:port (rediss:// for TLS)';
  }
}

/** Sizes as express accepts them: a byte count or a number with b, kb, mb. */
const SIZE_PATTERN = /^\d+(\.\d+)?\s*(b|kb|mb)?$/i;

/**
 * Every setting the server reads from the environment, with its default.
 * Keys are the environment variable names so a validation error names the variable.
 */
export class EnvironmentVariables {
  /** The environment, by Node's convention. */
  @orDefault('production')
  @IsIn(['production', 'development', 'test'])
  NODE_ENV: 'production' | 'development' | 'test';

  /** The HTTP port. */
  @int('3000')
  @IsInt()
  @Min(0)
  @Max(65535)
  PORT: number;

  /** The address to listen on; `0.0.0.0` is every interface. */
  @orDefault('0.0.0.0')
  @IsString()
  HOST: string;

  /**
   * Worker processes under node:cluster; 0 runs a single process with no cluster. In a
   * container, set it to the container's CPU limit: the cores Node sees can be the host's.
   * @default one per CPU core
   */
  @int('-1')
  @IsInt()
  @Min(-1)
  @Max(1024)
  WORKERS: number;

  /**
   * A conversation with no activity for this long is evicted (default 30 min). Activity is a
   * create, a post, a delete, or a read receipt that moves a horizon.
   */
  @int('1800000')
  @IsInt()
  @Min(1)
  CONVERSATION_TTL_MS: number;

  /** When the eviction sweep runs (default every minute). */
  @orDefault('0 * * * * *')
  @Validate(CronExpressionConstraint)
  EVICTION_CRON: string;

  /** Characters per message, counted in Unicode code points (an emoji is one). */
  @int('10000')
  @IsInt()
  @Min(1)
  @Max(1_000_000)
  MAX_MESSAGE_LENGTH: number;

  /** Messages a conversation may hold; past it a post gets 409 conversation_full. */
  @int('10000')
  @IsInt()
  @Min(1)
  MAX_MESSAGES_PER_CONVERSATION: number;

  /** Conversations the store may hold; past it a create gets 503 capacity_exceeded. */
  @int('100000')
  @IsInt()
  @Min(1)
  MAX_CONVERSATIONS: number;

  /** How far a client's `timestamp` may be ahead of the server's clock (default 5 min). */
  @int('300000')
  @IsInt()
  @Min(0)
  MAX_CLOCK_SKEW_MS: number;

  /** The largest request body; past it 413 payload_too_large. */
  @orDefault('64kb')
  @Matches(SIZE_PATTERN, { message: 'must be a size such as 64kb, 1mb or 65536' })
  BODY_LIMIT: string;

  /**
   * How long a request waits for the store (the primary over IPC, or a Redis command, redirections
   * and retries included) before it is answered 503 store_unavailable.
   */
  @int('5000')
  @IsInt()
  @Min(1)
  STORE_TIMEOUT_MS: number;

  /** On SIGTERM or SIGINT: how long in-flight requests get before connections are cut. */
  @int('8000')
  @IsInt()
  @Min(0)
  SHUTDOWN_GRACE_MS: number;

  /**
   * The least important log level written. `log` includes one access log line per request;
   * `debug` adds Nest's module and route-mapping lines.
   */
  @orDefault('log')
  @IsIn(['silent', 'error', 'warn', 'log', 'debug', 'verbose'])
  LOG_LEVEL: 'silent' | 'error' | 'warn' | 'log' | 'debug' | 'verbose';

  /**
   * `json`: one JSON object per line; `pretty`: readable lines, prefixed with the process
   * (`[worker 2]`). The default is picked in validateConfig: a person reads a terminal, a log
   * collector reads anything else.
   * @default `pretty` when stdout is a terminal, else `json`
   */
  @IsIn(['json', 'pretty'])
  LOG_FORMAT: 'json' | 'pretty';

  /**
   * Collect metrics and serve them at `/metrics` in the Prometheus format; `false` collects
   * none, and `/metrics` answers 404.
   */
  @bool('true')
  @IsBoolean({ message: 'must be true or false' })
  METRICS_ENABLED: boolean;

  /**
   * Where conversations live: `memory`, in the memory of the process that owns the store (the
   * primary, or the single process), lost on restart unless SNAPSHOT_PATH is set; `redis`, a Redis
   * server or Redis Cluster shared by every instance.
   */
  @orDefault('memory')
  @IsIn(['memory', 'redis'])
  STORE: 'memory' | 'redis';

  /**
   * With STORE=redis: the one Redis, as `redis://` or `rediss://` (TLS), with user, password
   * and database number if needed. Not with REDIS_CLUSTER_NODES. A malformed URL, or a Redis that
   * cannot be reached within 5 s, stops the start.
   */
  @orDefault('redis://127.0.0.1:6379')
  @Matches(/^rediss?:\/\/[^\s]+$/, {
    message: 'must be a redis:// or rediss:// URL, for example redis://127.0.0.1:6379',
  })
  @Validate(RedisUrlConstraint)
  REDIS_URL: string;

  /**
   * With STORE=redis: seed nodes of a Redis Cluster (`host:port` or
   * `redis://[user:password@]host:port`, `rediss://` for TLS, comma-separated); the rest of the
   * cluster is discovered from them. Not with REDIS_URL: setting both stops the start.
   */
  @orDefault('')
  @ValidateIf((config: { REDIS_CLUSTER_NODES?: string }) => config.REDIS_CLUSTER_NODES !== '')
  @Validate(ClusterNodeListConstraint)
  REDIS_CLUSTER_NODES: string;

  /**
   * With STORE=redis: a create, post, delete or read receipt is acknowledged only once this many
   * replicas have it (Redis WAIT, right after the write, on the same connection); when fewer
   * confirm in time, 503 replication_timeout. 0: as soon as the master has it.
   */
  @int('0')
  @IsInt()
  @Min(0)
  @Max(16)
  REDIS_WAIT_REPLICAS: number;

  /**
   * How long a write waits for REDIS_WAIT_REPLICAS before it is answered 503 replication_timeout.
   */
  @int('500')
  @IsInt()
  @Min(1)
  REDIS_WAIT_TIMEOUT_MS: number;

  /**
   * The in-memory store's byte budget: message text plus what each message, conversation and kept
   * Idempotency-Key costs besides; a deleted message counts until it leaves the replay buffer
   * (EVENT_REPLAY_LIMIT) and no kept key holds it. A create or post past it is refused with 507
   * store_full. 0 (the default): derived from the old-space limit of the process that owns the
   * store (storeByteBudget; see Memory in docs/operations.md). On Redis, Redis's own `maxmemory`
   * applies instead.
   * @default half of what the old space leaves after 32 MiB for the server, at least 8 MiB
   */
  @int('0')
  @IsInt()
  @Min(0)
  MAX_STORE_BYTES: number;

  /**
   * Event streams one process serves at most; past it a new one gets 503
   * stream_capacity_exceeded.
   */
  @int('10000')
  @IsInt()
  @Min(1)
  MAX_EVENT_STREAMS: number;

  /**
   * Event streams one client (its API key, its customer token, or its address) may hold open in one
   * process; past it 429 too_many_streams. The customer tokens one address uses that were minted
   * without an API key hold at most 10 times this between them.
   */
  @int('20')
  @IsInt()
  @Min(1)
  MAX_EVENT_STREAMS_PER_CLIENT: number;

  /**
   * With STORE=redis: put in front of every key, so that several deployments (or tests) can share
   * one Redis. Every instance of one deployment must use the same.
   */
  @orDefault('chat:')
  @Matches(/^[A-Za-z0-9:_.-]{0,64}$/, {
    message:
      'must be at most 64 letters, digits or :_.- (no braces: they would break the hash tags)',
  })
  REDIS_KEY_PREFIX: string;

  /** Changes kept per conversation, so that a reconnecting event stream gets what it missed. */
  @int('1000')
  @IsInt()
  @Min(1)
  @Max(100_000)
  EVENT_REPLAY_LIMIT: number;

  /** How often an idle event stream gets a comment line, so that proxies keep it open. */
  @int('15000')
  @IsInt()
  @Min(100)
  SSE_HEARTBEAT_MS: number;

  /**
   * Bytes an event stream may have unsent (its response's buffer plus the changes it holds while
   * it writes a replay) before it is ended; the client reconnects with Last-Event-ID and catches
   * up. A value below the largest frame one message can make is raised to it. 0 (the default):
   * the larger of 4 MiB and that frame (see Live events in docs/api.md).
   * @default the larger of 4 MiB and the largest frame of one message (6 bytes per character of MAX_MESSAGE_LENGTH, plus its fields)
   */
  @int('0')
  @IsInt()
  @Min(0)
  SSE_MAX_BACKLOG_BYTES: number;

  /**
   * How long a typing indicator shows unless renewed: a typing event's `expiresAt` is now plus
   * this.
   */
  @int('5000')
  @IsInt()
  @Min(1_000)
  @Max(60_000)
  TYPING_TTL_MS: number;

  /**
   * How long a post's Idempotency-Key and its response are kept (default 24 h; never longer than
   * CONVERSATION_TTL_MS). A create's key lives as long as its conversation.
   */
  @int('86400000')
  @IsInt()
  @Min(1_000)
  IDEMPOTENCY_TTL_MS: number;

  /**
   * Origins that browsers may call the API from (CORS), comma-separated, such as
   * `https://app.example.com,http://localhost:5173`. None: no CORS headers at all.
   */
  @orDefault('')
  @Validate(OriginListConstraint)
  CORS_ORIGINS: string;

  /**
   * A client must send a request's headers within this, or gets 408 and is cut off (checked every
   * second).
   */
  @int('10000')
  @IsInt()
  @Min(1_000)
  HEADERS_TIMEOUT_MS: number;

  /** A client must send a whole request within this (an event stream's response may last). */
  @int('30000')
  @IsInt()
  @Min(1_000)
  REQUEST_TIMEOUT_MS: number;

  /** How long an idle keep-alive connection stays open. */
  @int('5000')
  @IsInt()
  @Min(0)
  KEEP_ALIVE_TIMEOUT_MS: number;

  /**
   * In-memory store only: where it is saved on a graceful stop (a temporary file, fsync, rename)
   * and read back at start, so that a planned restart keeps every conversation. None by default.
   */
  @orDefault('')
  @IsString()
  SNAPSHOT_PATH: string;

  /**
   * Keys for trusted callers (the business's backend, the agent console), comma-separated, 16 to
   * 256 visible ASCII characters each, sent as `Authorization: Bearer <key>`. None: access control
   * is off, and the server says so at start.
   */
  @orDefault('')
  @Validate(ApiKeyListConstraint)
  API_KEYS: string;

  /**
   * With API_KEYS set: anyone may open a conversation (and gets its customer token, which counts
   * against the address using it too: see RATE_LIMIT_MAX).
   */
  @bool('false')
  @IsBoolean()
  PUBLIC_CONVERSATIONS: boolean;

  /** The window of the rate limits. */
  @int('60000')
  @IsInt()
  @Min(1_000)
  RATE_LIMIT_WINDOW_MS: number;

  /**
   * Requests per window for each customer token and each client address without a valid
   * credential; 0: no limit. The customer tokens one address uses that were minted without an API
   * key get at most 10 times this between them. Without API_KEYS (the open development mode) there is no limit unless
   * this is set: no one there can be told apart, and a limit would only refuse test suites, load
   * tests and every user behind an untrusted proxy.
   * @default `600` with API_KEYS set, else `0`
   */
  @int((env) => (apiKeyList(String(env.API_KEYS ?? ''))?.length ? '600' : '0'))
  @IsInt()
  @Min(0)
  RATE_LIMIT_MAX: number;

  /** Requests per window for each API key; 0: no limit. */
  @int('6000')
  @IsInt()
  @Min(0)
  RATE_LIMIT_API_KEY_MAX: number;

  /**
   * Which proxies to believe about the client's address (X-Forwarded-For), as Express's
   * `trust proxy`: `true`, a hop count, or addresses such as `loopback`. Set it behind a proxy or
   * load balancer, or every client is counted as the proxy's one address.
   */
  @orDefault('false')
  @Matches(/^(true|false|\d+|[A-Za-z0-9.:/, -]+)$/, {
    message: 'must be true, false, a hop count or a list of addresses (see Express "trust proxy")',
  })
  TRUST_PROXY: string;

  /** The live console at `/`; `false` answers 404 there. */
  @bool('true')
  @IsBoolean()
  CONSOLE_ENABLED: boolean;

  /** How long `GET /health/ready` waits for the store before answering 503. */
  @int('1000')
  @IsInt()
  @Min(1)
  HEALTH_TIMEOUT_MS: number;
}

export type AppConfig = Readonly<EnvironmentVariables>;

export class ConfigValidationError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigValidationError';
  }
}

function describe(error: ValidationError): string {
  const received = error.value === undefined ? '' : ` (got ${JSON.stringify(error.value)})`;
  return `${error.property} ${Object.values(error.constraints ?? {}).join('; ')}${received}`;
}

/**
 * Reads the known variables from `env`, applies defaults and validates them.
 * Throws a ConfigValidationError naming every bad variable. `stdoutIsTTY` picks LOG_FORMAT's
 * default (a cluster's workers share the primary's stdout, so they pick the same).
 */
export function validateConfig(
  env: Record<string, unknown>,
  { stdoutIsTTY = Boolean(process.stdout.isTTY) }: { stdoutIsTTY?: boolean } = {},
): AppConfig {
  const given = (name: string) =>
    typeof env[name] === 'string' && (env[name] as string).trim() !== '';
  const declared = pickDeclared(env);
  declared.LOG_FORMAT = given('LOG_FORMAT')
    ? String(env.LOG_FORMAT).trim()
    : stdoutIsTTY
      ? 'pretty'
      : 'json';
  const config = plainToInstance(EnvironmentVariables, declared);
  const errors = validateSync(config, { skipMissingProperties: false });
  const problems = errors.map(describe);
  if (given('REDIS_URL') && given('REDIS_CLUSTER_NODES')) {
    problems.push(
      'REDIS_URL and REDIS_CLUSTER_NODES are both set: set REDIS_URL for one Redis, or REDIS_CLUSTER_NODES for a Redis Cluster',
    );
  }
  if (problems.length > 0) {
    throw new ConfigValidationError(problems);
  }
  return Object.freeze(config);
}

const DECLARED_KEYS = [
  'NODE_ENV',
  'PORT',
  'HOST',
  'WORKERS',
  'CONVERSATION_TTL_MS',
  'EVICTION_CRON',
  'MAX_MESSAGE_LENGTH',
  'MAX_MESSAGES_PER_CONVERSATION',
  'MAX_CONVERSATIONS',
  'MAX_CLOCK_SKEW_MS',
  'BODY_LIMIT',
  'LOG_LEVEL',
  'STORE_TIMEOUT_MS',
  'SHUTDOWN_GRACE_MS',
  'LOG_FORMAT',
  'METRICS_ENABLED',
  'HEALTH_TIMEOUT_MS',
  'STORE',
  'REDIS_URL',
  'REDIS_CLUSTER_NODES',
  'REDIS_WAIT_REPLICAS',
  'REDIS_WAIT_TIMEOUT_MS',
  'REDIS_KEY_PREFIX',
  'MAX_STORE_BYTES',
  'MAX_EVENT_STREAMS',
  'MAX_EVENT_STREAMS_PER_CLIENT',
  'EVENT_REPLAY_LIMIT',
  'SSE_HEARTBEAT_MS',
  'SSE_MAX_BACKLOG_BYTES',
  'TYPING_TTL_MS',
  'IDEMPOTENCY_TTL_MS',
  'CORS_ORIGINS',
  'HEADERS_TIMEOUT_MS',
  'REQUEST_TIMEOUT_MS',
  'KEEP_ALIVE_TIMEOUT_MS',
  'SNAPSHOT_PATH',
  'API_KEYS',
  'PUBLIC_CONVERSATIONS',
  'RATE_LIMIT_WINDOW_MS',
  'RATE_LIMIT_MAX',
  'RATE_LIMIT_API_KEY_MAX',
  'TRUST_PROXY',
  'CONSOLE_ENABLED',
] as const satisfies readonly (keyof EnvironmentVariables)[];

function pickDeclared(env: Record<string, unknown>): Record<string, unknown> {
  const picked: Record<string, unknown> = {};
  for (const key of DECLARED_KEYS) {
    // Present even when undefined: class-transformer only runs a property's transform
    // (and so applies its default) for keys that exist on the input.
    picked[key] = env[key];
  }
  return picked;
}

/**
 * The validated configuration, read from process.env once, injectable as `@Inject(appConfig.KEY)`;
 * what is parsed or derived from it is in app.settings.ts.
 */
export const appConfig = registerAs('app', (): AppConfig => validateConfig(process.env));
