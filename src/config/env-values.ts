import { parse as parseSize } from 'bytes';
import { ValidatorConstraint, ValidatorConstraintInterface } from 'class-validator';
import { validateCronExpression } from 'cron';

/*
 * The forms of the environment's values that take more than a validator of class-validator's
 * own: each check (a constraint, with what the configuration reference says it takes) and the
 * parser that turns a checked value into its setting.
 */

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

/** Sizes as express accepts them: a byte count or a number with b, kb, mb. */
export const SIZE_PATTERN = /^\d+(\.\d+)?\s*(b|kb|mb)?$/i;

/** A size such as `64kb` in bytes, read as body-parser reads its `limit` (the same function). */
export function sizeInBytes(size: string): number {
  const bytes = parseSize(size);
  if (bytes === null) {
    throw new Error(`not a size: ${size}`); // unreachable: the config validates the form
  }
  return bytes;
}

/** TRUST_PROXY as Express's `trust proxy` setting takes it: a boolean, a hop count or addresses. */
export function trustProxySetting(value: string): boolean | number | string {
  if (value === 'true' || value === 'false') {
    return value === 'true';
  }
  return /^\d+$/.test(value) ? Number(value) : value;
}

@ValidatorConstraint({ name: 'cronExpression' })
export class CronExpressionConstraint implements ValidatorConstraintInterface {
  static readonly takes = 'cron expression (six fields, with seconds)';
  validate(value: unknown): boolean {
    return typeof value === 'string' && validateCronExpression(value).valid;
  }
  defaultMessage(): string {
    return 'must be a valid cron expression, for example "0 * * * * *" (every minute)';
  }
}

@ValidatorConstraint({ name: 'redisUrl' })
export class RedisUrlConstraint implements ValidatorConstraintInterface {
  static readonly takes = 'URL';
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
export class OriginListConstraint implements ValidatorConstraintInterface {
  static readonly takes = 'comma-separated origins';
  validate(value: unknown): boolean {
    return typeof value === 'string' && originList(value) !== null;
  }
  defaultMessage(): string {
    return 'must be a comma-separated list of origins such as https://app.example.com (scheme, host and optional port, nothing else)';
  }
}

@ValidatorConstraint({ name: 'apiKeyList' })
export class ApiKeyListConstraint implements ValidatorConstraintInterface {
  static readonly takes = 'comma-separated keys';
  validate(value: unknown): boolean {
    return typeof value === 'string' && apiKeyList(value) !== null;
  }
  defaultMessage(): string {
    return 'must be a comma-separated list of keys, each 16 to 256 visible ASCII characters other than a comma';
  }
}

/** Empty (no Redis Cluster), or at least one well-formed seed. */
@ValidatorConstraint({ name: 'clusterNodeList' })
export class ClusterNodeListConstraint implements ValidatorConstraintInterface {
  static readonly takes = 'comma-separated seed nodes';
  validate(value: unknown): boolean {
    return typeof value === 'string' && (value === '' || (clusterNodeList(value)?.length ?? 0) > 0);
  }
  defaultMessage(): string {
    return 'must be a comma-separated list of seed nodes: host:port, or redis://[user:password@]host:port (rediss:// for TLS)';
  }
}
