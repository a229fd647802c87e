import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Cluster, Redis } from 'ioredis';
import { ScriptCode, scriptCodesLua } from './script-codes';

/**
 * The Lua scripts that change or read one conversation atomically, one file each in scripts/
 * (bullmq's layout): `<name>-<number of keys>.lua`, headed
 * by its KEYS, ARGV and what it returns. A conversation's scripts take its keys
 * (RedisKeys.conversation), all in one hash slot; those that change it also append the change
 * to its event stream and publish it on its channel (sharded pub/sub: SPUBLISH, on the
 * conversation's own slot). What they answer besides data is a ScriptCode (script-codes.ts).
 *
 * A line `--@include "name"` is replaced by scripts/includes/<name>.lua, or for "codes" by the
 * ScriptCode locals. The files are read once per process, when the first store connects;
 * nest-cli.json copies them beside the compiled loader in dist/. Other ports' stores on the
 * same connection keep their scripts in their own folders, in the same form (the rate-limit
 * counter's: access/rate-limits/redis/), and define them with RedisStoreConnection.defineScripts.
 */
export const SCRIPTS_DIR = join(__dirname, 'scripts');

export interface RedisScript {
  /** The client command: `chat` and the file's name, e.g. chatAppend for append-7.lua. */
  name: string;
  numberOfKeys: number;
  lua: string;
}

const SCRIPT_FILE = /^([a-z][A-Za-z]*)-(\d+)\.lua$/;
const INCLUDE = /^--@include "(\w+)"$/gm;

/** Reads every script in `dir`, its includes put in. */
export function loadRedisScripts(dir = SCRIPTS_DIR): RedisScript[] {
  const codes = scriptCodesLua();
  const include = (name: string) =>
    name === 'codes' ? codes : readFileSync(join(dir, 'includes', `${name}.lua`), 'utf8').trimEnd();
  return readdirSync(dir)
    .map((file) => SCRIPT_FILE.exec(file))
    .filter((match) => match !== null)
    .map(([file, name, keys]) => ({
      name: `chat${name[0].toUpperCase()}${name.slice(1)}`,
      numberOfKeys: Number(keys),
      lua: readFileSync(join(dir, file), 'utf8').replace(INCLUDE, (_line, what: string) =>
        include(what),
      ),
    }));
}

/** Each folder's scripts, once read. */
const loaded = new Map<string, RedisScript[]>();

/**
 * Makes every script in `dir` a command of the client (ioredis defineCommand, EVALSHA
 * underneath).
 */
export function defineRedisScripts(redis: Redis | Cluster, dir = SCRIPTS_DIR): void {
  let scripts = loaded.get(dir);
  if (!scripts) {
    scripts = loadRedisScripts(dir);
    loaded.set(dir, scripts);
  }
  for (const { name, numberOfKeys, lua } of scripts) {
    redis.defineCommand(name, { numberOfKeys, lua });
  }
}

type Key = string;
type Arg = string | number;

/** The scripts as client commands, typed: what each takes and answers (see its file). */
export interface RedisScripts {
  chatReserve(meta: Key, max: Arg): Promise<ScriptCode.Done | ScriptCode.AtCapacity>;
  chatCreate(
    conv: Key,
    msgs: Key,
    ids: Key,
    events: Key,
    seqs: Key,
    fingerprint: Arg,
    mayMake: Arg,
    tokenHash: Arg,
    tokenMintedBy: Arg,
    inboxChannel: Arg,
    conversationId: Arg,
    ...fieldsAndValues: Arg[]
  ): Promise<
    | [ScriptCode.Done]
    | [ScriptCode.Exists, string]
    | [ScriptCode.KeyReused]
    | [ScriptCode.ConversationNotFound]
  >;
  chatGet(
    conv: Key,
    msgs: Key,
    ids: Key,
    events: Key,
    seqs: Key,
    knownVersion: Arg,
    knownLife: Arg,
    ...fields: Arg[]
  ): Promise<[values: (string | null)[], members?: string[]] | null>;
  chatAppend(
    conv: Key,
    msgs: Key,
    ids: Key,
    events: Key,
    seqs: Key,
    postKeys: Key,
    postKeyExpiry: Key,
    messageId: Arg,
    jsonHead: Arg,
    jsonTail: Arg,
    timestamp: Arg,
    now: Arg,
    maxMessages: Arg,
    channel: Arg,
    replayLimit: Arg,
    key: Arg,
    fingerprint: Arg,
    keyTtlMs: Arg,
    sender: Arg,
    inboxChannel: Arg,
    conversationId: Arg,
  ): Promise<
    | number
    | [json: string]
    | [
        seq: number,
        lastActivityAt: number,
        waitingSince: number,
        reopenedFrom: string,
        snoozedUntil: number,
        assignee: string,
        life: number,
        reopenJson: string,
      ]
  >;
  chatDelete(
    conv: Key,
    msgs: Key,
    ids: Key,
    events: Key,
    seqs: Key,
    messageId: Arg,
    now: Arg,
    channel: Arg,
    replayLimit: Arg,
    inboxChannel: Arg,
    conversationId: Arg,
  ): Promise<
    | number
    | [
        seq: number,
        lastActivityAt: number,
        waitingSince: number,
        assignee: string,
        life: number,
        json: string,
      ]
  >;
  chatRead(
    conv: Key,
    msgs: Key,
    ids: Key,
    events: Key,
    seqs: Key,
    sender: Arg,
    seq: Arg,
    now: Arg,
    channel: Arg,
    replayLimit: Arg,
    inboxChannel: Arg,
    conversationId: Arg,
  ): Promise<[number, number?, number?, number?, string?, number?, string?]>;
  chatUpdate(
    conv: Key,
    msgs: Key,
    ids: Key,
    events: Key,
    seqs: Key,
    stateSeq: Arg,
    life: Arg,
    now: Arg,
    channel: Arg,
    replayLimit: Arg,
    inboxChannel: Arg,
    conversationId: Arg,
    jsonAfterSeq: Arg,
    removeSnooze: Arg,
    ...fieldsAndValues: Arg[]
  ): Promise<[number, number?]>;
  chatTyping(
    conv: Key,
    channel: Arg,
    payload: Arg,
  ): Promise<ScriptCode.Done | ScriptCode.ConversationNotFound>;
  chatEvict(
    conv: Key,
    msgs: Key,
    ids: Key,
    events: Key,
    seqs: Key,
    postKeys: Key,
    postKeyExpiry: Key,
    cutoff: Arg,
    channel: Arg,
    inboxChannel: Arg,
    conversationId: Arg,
  ): Promise<[number, string | number, string?, string?]>;
  chatChangesAfter(
    conv: Key,
    msgs: Key,
    ids: Key,
    events: Key,
    seqs: Key,
    afterSeq: Arg,
  ): Promise<[number, number, [string, string[]][]] | null>;
  chatPage(
    conv: Key,
    msgs: Key,
    ids: Key,
    events: Key,
    seqs: Key,
    mode: 'after' | 'before' | 'last',
    cursor: Arg,
    limit: Arg,
  ): Promise<[number, string[]] | null>;
  chatDeleteIf(key: Key, value: Arg): Promise<number>;
  chatQueued(conv: Key, life: Arg, now: Arg, ...seqs: Arg[]): Promise<number | null>;
  chatRecount(
    conv: Key,
    msgs: Key,
    ids: Key,
    events: Key,
    seqs: Key,
  ): Promise<[unreadCustomer: number, unreadAgent: number, waitingSince: number] | []>;
  chatCountInbox(counts: Key, ...fieldsAndDeltas: Arg[]): Promise<ScriptCode.Done>;
  chatSetInboxCounts(counts: Key, gen: Arg, ...fieldsAndCounts: Arg[]): Promise<0 | 1>;
  chatMarkCounted(conv: Key): Promise<0 | 1>;
  chatInboxScan(
    bucket: Key,
    order: 'desc' | 'asc',
    key: Arg,
    id: Arg,
    count: Arg,
  ): Promise<string[]>;
}
