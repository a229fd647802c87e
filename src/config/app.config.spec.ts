import { clusterNodeList, ConfigValidationError, validateConfig } from './app.config';
import { settingsOf } from './app.settings';

/** The error validateConfig throws for env; fails the test if it does not throw one. */
function configError(env: Record<string, unknown>): ConfigValidationError {
  let caught: unknown;
  try {
    validateConfig(env);
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(ConfigValidationError);
  return caught as ConfigValidationError;
}

/** Variables named by the error, from its problem lines ("NAME must ..."). */
function namedVariables(error: ConfigValidationError): string[] {
  return error.problems.map((problem) => problem.split(' ')[0]).sort();
}

describe('validateConfig', () => {
  const DEFAULTS = {
    NODE_ENV: 'production',
    PORT: 3000,
    HOST: '0.0.0.0',
    WORKERS: -1,
    CONVERSATION_TTL_MS: 1_800_000,
    EVICTION_CRON: '0 * * * * *',
    MAX_MESSAGE_LENGTH: 10_000,
    MAX_MESSAGES_PER_CONVERSATION: 10_000,
    MAX_CONVERSATIONS: 100_000,
    MAX_CLOCK_SKEW_MS: 300_000,
    SNOOZE_MAX_MS: 2_592_000_000,
    WEBHOOK_MAX_ENDPOINTS: 20,
    WEBHOOK_TIMEOUT_MS: 15_000,
    WEBHOOK_RETRY_SCHEDULE: '5,300,1800,7200,18000,36000,36000',
    WEBHOOK_DISABLE_AFTER_MS: 432_000_000,
    WEBHOOK_MAX_IN_FLIGHT: 8,
    WEBHOOK_MAX_PENDING: 100_000,
    WEBHOOK_MAX_BYTES: '64mb',
    WEBHOOK_RETENTION_MS: 259_200_000,
    WEBHOOK_LOG_LIMIT: 1_000,
    WEBHOOK_RECONCILE_MS: 5_000,
    WEBHOOK_ALLOW_PRIVATE_NETWORKS: false,
    BODY_LIMIT: '64kb',
    STORE_TIMEOUT_MS: 5_000,
    SHUTDOWN_GRACE_MS: 8_000,
    LOG_LEVEL: 'log',
    LOG_FORMAT: 'json',
    METRICS_ENABLED: true,
    HEALTH_TIMEOUT_MS: 1_000,
    STORE: 'memory',
    REDIS_URL: 'redis://127.0.0.1:6379',
    REDIS_CLUSTER_NODES: '',
    REDIS_WAIT_REPLICAS: 0,
    REDIS_WAIT_TIMEOUT_MS: 500,
    MAX_STORE_BYTES: 0,
    MAX_EVENT_STREAMS: 10_000,
    MAX_EVENT_STREAMS_PER_CLIENT: 20,
    REDIS_KEY_PREFIX: 'chat:',
    EVENT_REPLAY_LIMIT: 1_000,
    SSE_HEARTBEAT_MS: 15_000,
    SSE_MAX_BACKLOG_BYTES: 0,
    TYPING_TTL_MS: 5_000,
    IDEMPOTENCY_TTL_MS: 86_400_000,
    CORS_ORIGINS: '',
    HEADERS_TIMEOUT_MS: 10_000,
    REQUEST_TIMEOUT_MS: 30_000,
    KEEP_ALIVE_TIMEOUT_MS: 5_000,
    SNAPSHOT_PATH: '',
    API_KEYS: '',
    PUBLIC_CONVERSATIONS: false,
    RATE_LIMIT_WINDOW_MS: 60_000,
    RATE_LIMIT_MAX: 0,
    RATE_LIMIT_API_KEY_MAX: 6_000,
    TRUST_PROXY: 'false',
    CONSOLE_ENABLED: true,
  };

  describe('defaults', () => {
    const pipe = { stdoutIsTTY: false };

    it('applies every default when the environment is empty', () => {
      expect({ ...validateConfig({}, pipe) }).toEqual(DEFAULTS);
    });

    it('treats empty strings as unset', () => {
      const env = Object.fromEntries(Object.keys(DEFAULTS).map((key) => [key, '']));

      expect({ ...validateConfig(env, pipe) }).toEqual(DEFAULTS);
    });

    it('writes readable lines to a terminal, JSON elsewhere, unless LOG_FORMAT says', () => {
      expect(validateConfig({}, { stdoutIsTTY: true }).LOG_FORMAT).toBe('pretty');
      expect(validateConfig({ LOG_FORMAT: '' }, { stdoutIsTTY: true }).LOG_FORMAT).toBe('pretty');
      expect(validateConfig({}, pipe).LOG_FORMAT).toBe('json');
      expect(validateConfig({ LOG_FORMAT: 'json' }, { stdoutIsTTY: true }).LOG_FORMAT).toBe('json');
      expect(validateConfig({ LOG_FORMAT: ' pretty ' }, pipe).LOG_FORMAT).toBe('pretty');
      expect(namedVariables(configError({ LOG_FORMAT: 'xml' }))).toEqual(['LOG_FORMAT']);
    });

    it('limits client addresses by default only when API_KEYS is set; an explicit value always holds', () => {
      const keys = 'backend-key-0123456789';
      expect(validateConfig({}).RATE_LIMIT_MAX).toBe(0);
      expect(validateConfig({ API_KEYS: keys }).RATE_LIMIT_MAX).toBe(600);
      expect(validateConfig({ API_KEYS: keys, RATE_LIMIT_MAX: '' }).RATE_LIMIT_MAX).toBe(600);
      expect(validateConfig({ RATE_LIMIT_MAX: '50' }).RATE_LIMIT_MAX).toBe(50);
      expect(validateConfig({ API_KEYS: keys, RATE_LIMIT_MAX: '0' }).RATE_LIMIT_MAX).toBe(0);
    });

    it('ignores variables it does not know', () => {
      const config = validateConfig({ PATH: '/usr/bin', SECRET: 'x' }, pipe);

      expect({ ...config }).toEqual(DEFAULTS);
      expect(config).not.toHaveProperty('SECRET');
    });

    it('returns a frozen object', () => {
      expect(Object.isFrozen(validateConfig({}))).toBe(true);
    });
  });

  describe('valid values', () => {
    it('parses integers and keeps strings', () => {
      const config = validateConfig({
        NODE_ENV: 'test',
        PORT: '8080',
        HOST: '127.0.0.1',
        WORKERS: '0',
        CONVERSATION_TTL_MS: '1000',
        EVICTION_CRON: '*/5 * * * * *',
        MAX_MESSAGE_LENGTH: '5',
        MAX_MESSAGES_PER_CONVERSATION: '3',
        MAX_CONVERSATIONS: '2',
        MAX_CLOCK_SKEW_MS: '0',
        SNOOZE_MAX_MS: '60000',
        WEBHOOK_MAX_ENDPOINTS: '3',
        WEBHOOK_TIMEOUT_MS: '500',
        WEBHOOK_RETRY_SCHEDULE: '0.05, 1,30',
        WEBHOOK_DISABLE_AFTER_MS: '0',
        WEBHOOK_MAX_IN_FLIGHT: '2',
        WEBHOOK_MAX_PENDING: '10',
        WEBHOOK_MAX_BYTES: '1mb',
        WEBHOOK_RETENTION_MS: '60000',
        WEBHOOK_LOG_LIMIT: '5',
        WEBHOOK_RECONCILE_MS: '200',
        WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true',
        BODY_LIMIT: '1kb',
        STORE_TIMEOUT_MS: '250',
        SHUTDOWN_GRACE_MS: '0',
        LOG_LEVEL: 'silent',
        LOG_FORMAT: 'pretty',
        METRICS_ENABLED: 'false',
        HEALTH_TIMEOUT_MS: '50',
        STORE: 'redis',
        REDIS_URL: 'rediss://user:secret@redis.internal:6380/2',
        REDIS_WAIT_REPLICAS: '1',
        REDIS_WAIT_TIMEOUT_MS: '250',
        MAX_STORE_BYTES: '1000000',
        MAX_EVENT_STREAMS: '100',
        MAX_EVENT_STREAMS_PER_CLIENT: '2',
        REDIS_KEY_PREFIX: 'test-1:',
        EVENT_REPLAY_LIMIT: '20',
        SSE_HEARTBEAT_MS: '500',
        SSE_MAX_BACKLOG_BYTES: '65536',
        TYPING_TTL_MS: '2000',
        IDEMPOTENCY_TTL_MS: '60000',
        CORS_ORIGINS: 'https://app.example.com, http://localhost:5173',
        HEADERS_TIMEOUT_MS: '2000',
        REQUEST_TIMEOUT_MS: '4000',
        KEEP_ALIVE_TIMEOUT_MS: '0',
        SNAPSHOT_PATH: '/var/lib/chat/store.jsonl',
        API_KEYS: 'backend-key-0123456789, agent-console-key-abcdef',
        PUBLIC_CONVERSATIONS: 'true',
        RATE_LIMIT_WINDOW_MS: '1000',
        RATE_LIMIT_MAX: '0',
        RATE_LIMIT_API_KEY_MAX: '50',
        TRUST_PROXY: 'loopback',
        CONSOLE_ENABLED: 'false',
      });

      expect({ ...config }).toEqual({
        NODE_ENV: 'test',
        PORT: 8080,
        HOST: '127.0.0.1',
        WORKERS: 0,
        CONVERSATION_TTL_MS: 1000,
        EVICTION_CRON: '*/5 * * * * *',
        MAX_MESSAGE_LENGTH: 5,
        MAX_MESSAGES_PER_CONVERSATION: 3,
        MAX_CONVERSATIONS: 2,
        MAX_CLOCK_SKEW_MS: 0,
        SNOOZE_MAX_MS: 60_000,
        WEBHOOK_MAX_ENDPOINTS: 3,
        WEBHOOK_TIMEOUT_MS: 500,
        WEBHOOK_RETRY_SCHEDULE: '0.05, 1,30',
        WEBHOOK_DISABLE_AFTER_MS: 0,
        WEBHOOK_MAX_IN_FLIGHT: 2,
        WEBHOOK_MAX_PENDING: 10,
        WEBHOOK_MAX_BYTES: '1mb',
        WEBHOOK_RETENTION_MS: 60_000,
        WEBHOOK_LOG_LIMIT: 5,
        WEBHOOK_RECONCILE_MS: 200,
        WEBHOOK_ALLOW_PRIVATE_NETWORKS: true,
        BODY_LIMIT: '1kb',
        STORE_TIMEOUT_MS: 250,
        SHUTDOWN_GRACE_MS: 0,
        LOG_LEVEL: 'silent',
        LOG_FORMAT: 'pretty',
        METRICS_ENABLED: false,
        HEALTH_TIMEOUT_MS: 50,
        STORE: 'redis',
        REDIS_URL: 'rediss://user:secret@redis.internal:6380/2',
        REDIS_CLUSTER_NODES: '',
        REDIS_WAIT_REPLICAS: 1,
        REDIS_WAIT_TIMEOUT_MS: 250,
        MAX_STORE_BYTES: 1_000_000,
        MAX_EVENT_STREAMS: 100,
        MAX_EVENT_STREAMS_PER_CLIENT: 2,
        REDIS_KEY_PREFIX: 'test-1:',
        EVENT_REPLAY_LIMIT: 20,
        SSE_HEARTBEAT_MS: 500,
        SSE_MAX_BACKLOG_BYTES: 65_536,
        TYPING_TTL_MS: 2_000,
        IDEMPOTENCY_TTL_MS: 60_000,
        CORS_ORIGINS: 'https://app.example.com, http://localhost:5173',
        HEADERS_TIMEOUT_MS: 2_000,
        REQUEST_TIMEOUT_MS: 4_000,
        KEEP_ALIVE_TIMEOUT_MS: 0,
        SNAPSHOT_PATH: '/var/lib/chat/store.jsonl',
        API_KEYS: 'backend-key-0123456789, agent-console-key-abcdef',
        PUBLIC_CONVERSATIONS: true,
        RATE_LIMIT_WINDOW_MS: 1_000,
        RATE_LIMIT_MAX: 0,
        RATE_LIMIT_API_KEY_MAX: 50,
        TRUST_PROXY: 'loopback',
        CONSOLE_ENABLED: false,
      });
    });

    it.each<[string, boolean]>([
      ['TRUE', true],
      [' false ', false],
    ])('reads METRICS_ENABLED=%j as %s', (raw, expected) => {
      expect(validateConfig({ METRICS_ENABLED: raw }).METRICS_ENABLED).toBe(expected);
    });

    it('trims surrounding whitespace', () => {
      const config = validateConfig({ PORT: ' 8080 ', BODY_LIMIT: ' 1mb ' });

      expect(config.PORT).toBe(8080);
      expect(config.BODY_LIMIT).toBe('1mb');
    });

    it.each(['0', '65535'])('accepts PORT=%s', (port) => {
      expect(validateConfig({ PORT: port }).PORT).toBe(Number(port));
    });

    it.each(['65536', '1.5kb', '1024', '2MB'])('accepts BODY_LIMIT=%s', (limit) => {
      expect(validateConfig({ BODY_LIMIT: limit }).BODY_LIMIT).toBe(limit);
    });

    it('accepts a five-field cron expression', () => {
      expect(validateConfig({ EVICTION_CRON: '*/10 * * * *' }).EVICTION_CRON).toBe('*/10 * * * *');
    });
  });

  describe('invalid values', () => {
    it.each(['abc', '12.5', '3000abc', '-5', '1e3', '65536', '0x50'])(
      'refuses PORT=%j, naming PORT',
      (port) => {
        const error = configError({ PORT: port });

        expect(error.name).toBe('ConfigValidationError');
        expect(namedVariables(error)).toEqual(['PORT']);
        expect(error.message).toMatch(/^Invalid configuration:\n {2}- PORT /);
      },
    );

    it.each<[string, string]>([
      ['EVICTION_CRON', 'not a cron'],
      ['EVICTION_CRON', '61 * * * * *'],
      ['CONVERSATION_TTL_MS', '0'],
      ['CONVERSATION_TTL_MS', '30m'],
      ['MAX_MESSAGE_LENGTH', '0'],
      ['MAX_MESSAGE_LENGTH', '1000001'],
      ['MAX_MESSAGES_PER_CONVERSATION', '-1'],
      ['MAX_CONVERSATIONS', '10.5'],
      ['MAX_CLOCK_SKEW_MS', '-1'],
      ['SNOOZE_MAX_MS', '999'],
      ['BODY_LIMIT', 'huge'],
      ['BODY_LIMIT', '-1kb'],
      ['BODY_LIMIT', '1gb'],
      ['LOG_LEVEL', 'loud'],
      ['NODE_ENV', 'staging'],
      ['WORKERS', '-2'],
      ['WORKERS', 'many'],
      ['STORE_TIMEOUT_MS', '0'],
      ['SHUTDOWN_GRACE_MS', '-1'],
      ['LOG_FORMAT', 'xml'],
      ['METRICS_ENABLED', 'yes'],
      ['HEALTH_TIMEOUT_MS', '0'],
      ['STORE', 'postgres'],
      ['REDIS_URL', 'localhost:6379'],
      ['REDIS_URL', 'http://127.0.0.1:6379'],
      ['REDIS_URL', 'redis://'],
      ['REDIS_URL', 'redis://127.0.0.1:6379/not-a-db'],
      ['REDIS_KEY_PREFIX', 'a{b}'],
      ['REDIS_CLUSTER_NODES', 'redis-a'],
      ['REDIS_CLUSTER_NODES', 'redis-a:6379,http://redis-b:6379'],
      ['REDIS_CLUSTER_NODES', 'redis://redis-a:6379/2'],
      ['REDIS_CLUSTER_NODES', ','],
      ['REDIS_WAIT_REPLICAS', '-1'],
      ['REDIS_WAIT_TIMEOUT_MS', '0'],
      ['MAX_STORE_BYTES', '64mb'],
      ['MAX_EVENT_STREAMS', '0'],
      ['MAX_EVENT_STREAMS_PER_CLIENT', '-1'],
      ['EVENT_REPLAY_LIMIT', '0'],
      ['SSE_HEARTBEAT_MS', '10'],
      ['TYPING_TTL_MS', '500'],
      ['TYPING_TTL_MS', '120000'],
      ['IDEMPOTENCY_TTL_MS', '5'],
      ['CORS_ORIGINS', 'https://app.example.com/path'],
      ['CORS_ORIGINS', '*'],
      ['HEADERS_TIMEOUT_MS', '10'],
      ['REQUEST_TIMEOUT_MS', '-1'],
      ['API_KEYS', 'short'],
      ['API_KEYS', 'a-long-enough-key-0001 with-space'],
      ['PUBLIC_CONVERSATIONS', 'yes'],
      ['RATE_LIMIT_WINDOW_MS', '10'],
      ['RATE_LIMIT_MAX', '-1'],
      ['RATE_LIMIT_API_KEY_MAX', 'lots'],
      ['TRUST_PROXY', 'x{y}'],
      ['CONSOLE_ENABLED', 'on'],
    ])('refuses %s=%j, naming it', (name, value) => {
      const error = configError({ [name]: value });

      expect(namedVariables(error)).toEqual([name]);
      expect(error.message).toContain(`- ${name} `);
      expect(error.message).toContain(JSON.stringify(value).slice(1, -1));
    });

    it('refuses REDIS_URL and REDIS_CLUSTER_NODES together, naming both', () => {
      const error = configError({
        REDIS_URL: 'redis://127.0.0.1:6379',
        REDIS_CLUSTER_NODES: '127.0.0.1:7000',
      });
      expect(error.problems).toEqual([
        'REDIS_URL and REDIS_CLUSTER_NODES are both set: set REDIS_URL for one Redis, or REDIS_CLUSTER_NODES for a Redis Cluster',
      ]);
    });

    it('reads cluster seeds in every form, credentials and TLS included', () => {
      expect(
        clusterNodeList(
          '10.0.0.1:7000, redis://user:p%40ss@redis-b.internal:7001,rediss://[::1]:7002/',
        ),
      ).toEqual([
        { host: '10.0.0.1', port: 7000, tls: false },
        {
          host: 'redis-b.internal',
          port: 7001,
          username: 'user',
          password: 'p@ss',
          tls: false,
        },
        { host: '::1', port: 7002, tls: true },
      ]);
      expect(validateConfig({ REDIS_CLUSTER_NODES: '127.0.0.1:7000' }).REDIS_CLUSTER_NODES).toBe(
        '127.0.0.1:7000',
      );
    });

    it('names every bad variable at once, and no good one', () => {
      const error = configError({
        PORT: 'abc',
        EVICTION_CRON: 'not a cron',
        MAX_MESSAGE_LENGTH: '12.5',
        BODY_LIMIT: 'lots',
        HOST: 'localhost',
        MAX_CONVERSATIONS: '10',
      });

      expect(namedVariables(error)).toEqual([
        'BODY_LIMIT',
        'EVICTION_CRON',
        'MAX_MESSAGE_LENGTH',
        'PORT',
      ]);
      for (const name of ['PORT', 'EVICTION_CRON', 'MAX_MESSAGE_LENGTH', 'BODY_LIMIT']) {
        expect(error.message).toContain(`- ${name} `);
      }
      expect(error.message).not.toContain('HOST');
      expect(error.message).not.toContain('MAX_CONVERSATIONS');
    });
  });
});

describe('WEBHOOK_RETRY_SCHEDULE', () => {
  it('reads seconds, decimals allowed, into milliseconds; refuses anything else', () => {
    const settings = settingsOf(validateConfig({ WEBHOOK_RETRY_SCHEDULE: '0.05, 1,30' }));
    expect(settings.webhooks.retryScheduleMs).toEqual([50, 1_000, 30_000]);
    expect(() => validateConfig({ WEBHOOK_RETRY_SCHEDULE: '5,,7' })).toThrow(
      /WEBHOOK_RETRY_SCHEDULE/,
    );
    expect(() => validateConfig({ WEBHOOK_RETRY_SCHEDULE: '-1' })).toThrow(
      /WEBHOOK_RETRY_SCHEDULE/,
    );
  });
});
