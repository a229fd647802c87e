import http from 'node:http';
import path from 'node:path';
import type { Redis } from 'ioredis';
import { keysUnder } from './redis';
import { requestText } from './spawn-server';

/**
 * Fixtures of stored data written by an earlier build (test/fixtures/stored-data, made by its
 * generate.ts): the formats, how they are read and loaded, and how their recorded requests
 * are sent. Shared by the generator and test/stored-data.e2e-spec.ts, so both send the same
 * requests the same way.
 */
export const STORED_DATA_DIR = path.resolve(__dirname, '../fixtures/stored-data');

export type StoreKind = 'memory' | 'redis';

/** One conversation of a fixture, with what a client needs to reach it. */
export interface FixtureConversation {
  label: string;
  id: string;
  /** Its current customer token. */
  customerToken: string;
  /** Whether that token was minted without an API key. */
  anonymous: boolean;
  /** The seq of its last change as stored: the next change takes the one after. */
  lastSeq: number;
  messageCount: number;
  /** It holds MAX_MESSAGES_PER_CONVERSATION messages. */
  full: boolean;
}

/** What the generator wrote, and with which settings it must be read back. */
export interface FixtureMeta {
  /** The commit whose build wrote the data, when, with which Node and Redis. */
  writtenBy: { commit: string; date: string; node: string; redis?: string };
  /** Settings the data was written with; a server that reads it needs the same. */
  env: Record<string, string>;
  /** The API keys of `env.API_KEYS`, in order. */
  apiKeys: string[];
  conversations: FixtureConversation[];
}

/** A request of a fixture, sent as is. */
export interface FixtureRequest {
  name: string;
  method: 'GET' | 'POST' | 'DELETE';
  path: string;
  /** Credentials, X-Request-Id (so that problem bodies are the same), Idempotency-Key, ... */
  headers: Record<string, string>;
  /** Sent as JSON. */
  body?: unknown;
  /** An event stream: read until the frame whose id is this (a change's, or a reset's). */
  streamUntil?: number;
}

/** The headers of an answer that are part of it (the others vary by request or by time). */
const KEPT_HEADERS = ['content-type', 'location', 'idempotent-replayed', 'www-authenticate'];

export interface Answer {
  status: number;
  headers: Record<string, string>;
  text: string;
}

export interface RecordedExchange extends FixtureRequest {
  answer: Answer;
}

/** The answers the build that wrote the data gave for it, read back from the fixture. */
export interface FixtureAnswers {
  /** Reads, and writes that are refused or change nothing: the same answer every time. */
  reads: RecordedExchange[];
  /**
   * Retries of keyed posts and creates. A post's retry answers the same; a create's retry
   * answers the same except for its customerToken, which is new each time.
   */
  retries: RecordedExchange[];
  /** The seq the next post to each conversation (by label) was given; absent when full. */
  nextSeq: Record<string, number>;
}

function keptHeaders(headers: http.IncomingHttpHeaders): Record<string, string> {
  const kept: Record<string, string> = {};
  for (const name of KEPT_HEADERS) {
    const value = headers[name];
    if (value !== undefined) {
      kept[name] = Array.isArray(value) ? value.join(', ') : value;
    }
  }
  return kept;
}

/**
 * Opens an event stream and reads it up to and including the frame whose `id` is `untilSeq`,
 * then closes it: the replay a reconnecting client gets.
 */
function readStream(baseUrl: string, request: FixtureRequest, untilSeq: number): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const fail = (error: Error) => {
      clearTimeout(timer);
      req.destroy();
      reject(error);
    };
    const timer = setTimeout(
      () => fail(new Error(`${request.name}: no frame with id ${untilSeq} within 5 s: ${text}`)),
      5_000,
    );
    let text = '';
    const req = http.get(
      `${baseUrl}${request.path}`,
      { agent: false, headers: request.headers },
      (response) => {
        response.setEncoding('utf8');
        const done = (body: string) => {
          clearTimeout(timer);
          req.destroy();
          resolve({
            status: response.statusCode ?? 0,
            headers: keptHeaders(response.headers),
            text: body,
          });
        };
        if (response.statusCode !== 200) {
          response.on('data', (chunk: string) => (text += chunk));
          response.on('end', () => done(text));
          return;
        }
        response.on('data', (chunk: string) => {
          text += chunk;
          // Frames end with a blank line; data lines are JSON, which never holds a raw newline.
          let start = 0;
          let end: number;
          while ((end = text.indexOf('\n\n', start)) >= 0) {
            if (text.slice(start, end).split('\n').includes(`id: ${untilSeq}`)) {
              done(text.slice(0, end + 2));
              return;
            }
            start = end + 2;
          }
        });
      },
    );
    req.on('error', (error) => fail(error));
  });
}

/** Sends a fixture's request; the answer as recorded (status, the kept headers, the text). */
export async function send(baseUrl: string, request: FixtureRequest): Promise<Answer> {
  if (request.streamUntil !== undefined) {
    return readStream(baseUrl, request, request.streamUntil);
  }
  const { status, headers, text } = await requestText(baseUrl, request.method, request.path, {
    body: request.body,
    headers: request.headers,
  });
  return { status, headers: keptHeaders(headers), text };
}

/**
 * A Redis value in a fixture: text when the bytes are UTF-8 (what this server stores), else
 * base64, so that any bytes survive the JSON file.
 */
export type ExportedBytes = string | { base64: string };

/**
 * One key of a Redis export, its name without the prefix. `pttl` is what PTTL answered
 * (-1: no expiry). Hash fields and set members are sorted; sorted sets and streams are in
 * Redis's order; scores are Redis's own text, so they load back exactly.
 */
export type ExportedKey = { key: string; pttl: number } & (
  | { type: 'string'; value: ExportedBytes }
  | { type: 'hash'; value: [field: ExportedBytes, value: ExportedBytes][] }
  | { type: 'zset'; value: [member: ExportedBytes, score: string][] }
  | { type: 'stream'; value: [id: string, fields: ExportedBytes[]][] }
  | { type: 'list'; value: ExportedBytes[] }
  | { type: 'set'; value: ExportedBytes[] }
);

export interface RedisExport {
  /** The version of the Redis the data was read from. */
  redisVersion: string;
  keys: ExportedKey[];
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function toExported(bytes: Buffer): ExportedBytes {
  try {
    return utf8.decode(bytes);
  } catch {
    return { base64: bytes.toString('base64') };
  }
}

function toBytes(value: ExportedBytes): Buffer {
  return typeof value === 'string'
    ? Buffer.from(value, 'utf8')
    : Buffer.from(value.base64, 'base64');
}

const byText = (a: ExportedBytes, b: ExportedBytes) => Buffer.compare(toBytes(a), toBytes(b));

function pairs(flat: Buffer[]): [Buffer, Buffer][] {
  const result: [Buffer, Buffer][] = [];
  for (let i = 0; i < flat.length; i += 2) {
    result.push([flat[i], flat[i + 1]]);
  }
  return result;
}

/** Every key under `prefix`, with its type, contents and expiry, the prefix left off. */
export async function exportRedis(admin: Redis, prefix: string): Promise<ExportedKey[]> {
  const names = (await keysUnder(admin, prefix)).sort();
  const keys: ExportedKey[] = [];
  for (const name of names) {
    const key = name.slice(prefix.length);
    const type = await admin.type(name);
    const pttl = await admin.pttl(name);
    const call = (command: string, ...args: string[]) =>
      admin.callBuffer(command, name, ...args) as Promise<unknown>;
    switch (type) {
      case 'string':
        keys.push({ key, pttl, type, value: toExported((await call('GET')) as Buffer) });
        break;
      case 'hash':
        keys.push({
          key,
          pttl,
          type,
          value: pairs((await call('HGETALL')) as Buffer[])
            .map(([field, value]): [ExportedBytes, ExportedBytes] => [
              toExported(field),
              toExported(value),
            ])
            .sort(([a], [b]) => byText(a, b)),
        });
        break;
      case 'zset':
        keys.push({
          key,
          pttl,
          type,
          value: pairs((await call('ZRANGE', '0', '-1', 'WITHSCORES')) as Buffer[]).map(
            ([member, score]): [ExportedBytes, string] => [toExported(member), score.toString()],
          ),
        });
        break;
      case 'stream':
        keys.push({
          key,
          pttl,
          type,
          value: ((await call('XRANGE', '-', '+')) as [Buffer, Buffer[]][]).map(
            ([id, fields]): [string, ExportedBytes[]] => [id.toString(), fields.map(toExported)],
          ),
        });
        break;
      case 'list':
        keys.push({
          key,
          pttl,
          type,
          value: ((await call('LRANGE', '0', '-1')) as Buffer[]).map(toExported),
        });
        break;
      case 'set':
        keys.push({
          key,
          pttl,
          type,
          value: ((await call('SMEMBERS')) as Buffer[]).map(toExported).sort(byText),
        });
        break;
      case 'none':
        // Gone since the scan (an expiring key): nothing to keep.
        break;
      default:
        throw new Error(`${name}: cannot export a key of type ${type}`);
    }
  }
  return keys;
}

/** Writes an export's keys under `prefix`; none of them may exist there yet. */
export async function loadRedis(
  admin: Redis,
  prefix: string,
  keys: readonly ExportedKey[],
): Promise<void> {
  const CHUNK = 256;
  for (const entry of keys) {
    const name = `${prefix}${entry.key}`;
    if ((await admin.exists(name)) !== 0) {
      throw new Error(`${name} exists already`);
    }
    const commands: (string | Buffer)[][] = [];
    switch (entry.type) {
      case 'string':
        commands.push(['set', name, toBytes(entry.value)]);
        break;
      case 'hash':
        for (let i = 0; i < entry.value.length; i += CHUNK) {
          const chunk = entry.value.slice(i, i + CHUNK);
          commands.push(['hset', name, ...chunk.flatMap(([f, v]) => [toBytes(f), toBytes(v)])]);
        }
        break;
      case 'zset':
        for (let i = 0; i < entry.value.length; i += CHUNK) {
          const chunk = entry.value.slice(i, i + CHUNK);
          commands.push(['zadd', name, ...chunk.flatMap(([m, score]) => [score, toBytes(m)])]);
        }
        break;
      case 'stream':
        for (const [id, fields] of entry.value) {
          commands.push(['xadd', name, id, ...fields.map(toBytes)]);
        }
        break;
      case 'list':
        for (let i = 0; i < entry.value.length; i += CHUNK) {
          commands.push(['rpush', name, ...entry.value.slice(i, i + CHUNK).map(toBytes)]);
        }
        break;
      case 'set':
        for (let i = 0; i < entry.value.length; i += CHUNK) {
          commands.push(['sadd', name, ...entry.value.slice(i, i + CHUNK).map(toBytes)]);
        }
        break;
    }
    if (entry.pttl > 0) {
      commands.push(['pexpire', name, String(entry.pttl)]);
    }
    const results = await admin.multi(commands).exec();
    const failed = results?.find(([error]) => error);
    if (!results || failed) {
      throw new Error(`${name}: loading failed: ${String(failed?.[0])}`);
    }
  }
}

/** Deletes every key under `prefix`. */
export async function deleteRedisPrefix(admin: Redis, prefix: string): Promise<void> {
  const keys = await keysUnder(admin, prefix);
  if (keys.length > 0) {
    await admin.del(...keys);
  }
}
