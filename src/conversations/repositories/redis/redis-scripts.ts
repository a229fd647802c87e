/**
 * The Lua scripts that change or read one conversation atomically. KEYS are the
 * conversation's five keys (RedisKeys.conversation), all in one hash slot. Scripts that
 * change it also append the change to its event stream and publish it on its channel (sharded
 * pub/sub: SPUBLISH, on the conversation's own slot). Refusals come
 * back as negative numbers: -1 no such conversation, -2 conversation full, -3 no such message,
 * -4 an Idempotency-Key used with another request, -5 a read beyond the last seq.
 */
export const REDIS_SCRIPTS = {
  /** KEYS[1] meta; ARGV max conversations. 1 when a place was taken, 0 when the store is full. */
  chatReserve: {
    numberOfKeys: 1,
    lua: `
local n = tonumber(redis.call('HGET', KEYS[1], 'conversations') or '0')
if n >= tonumber(ARGV[1]) then return 0 end
redis.call('HINCRBY', KEYS[1], 'conversations', 1)
return 1`,
  },
  /**
   * ARGV now, customer token hash, the keyed create's fingerprint ('' without a key). {1} when
   * made; when the conversation exists (a keyed create's id comes from its key, so this is a
   * retry): {0, createdAt} with the new token hash put in place, or {-4} for another request.
   */
  chatCreate: {
    numberOfKeys: 5,
    lua: `
local made = redis.call('HMGET', KEYS[1], 'c', 'k')
if made[1] then
  if ARGV[3] == '' or made[2] ~= ARGV[3] then return {-4} end
  redis.call('HSET', KEYS[1], 't', ARGV[2])
  return {0, made[1]}
end
redis.call('HSET', KEYS[1], 'c', ARGV[1], 'a', ARGV[1], 's', 0, 'n', 0, 't', ARGV[2], 'k', ARGV[3])
return {1}`,
  },
  /**
   * ARGV known version (-1: none). Null when missing; else createdAt, lastActivityAt, seq,
   * count, the customer's and the agent's read horizons (false: none yet), and the members
   * unless the version is still the known one.
   */
  chatGet: {
    numberOfKeys: 5,
    lua: `
local h = redis.call('HMGET', KEYS[1], 'c', 'a', 's', 'n', 'rc', 'ra')
if not h[1] then return nil end
if h[3] == ARGV[1] then return h end
h[7] = redis.call('ZRANGE', KEYS[2], 0, -1)
return h`,
  },
  /**
   * KEYS the conversation's five, then its kept keyed posts and their expiry times. ARGV
   * message id, JSON head, JSON tail, timestamp, now, max messages, channel, replay limit,
   * scoped key ('' without one), fingerprint, key lifetime ms. The new seq; {the message JSON}
   * for a retry of a keyed post already stored; -4 for a key used with another request.
   */
  chatAppend: {
    numberOfKeys: 7,
    lua: `
local h = redis.call('HMGET', KEYS[1], 'a', 'n', 's')
if not h[1] then return -1 end
local keyed = ARGV[9] ~= ''
if keyed then
  -- Before the limits: a retry gets what the first attempt stored, whatever happened since.
  local now = tonumber(ARGV[5])
  local expired = redis.call('ZRANGEBYSCORE', KEYS[7], '-inf', now, 'LIMIT', 0, 16)
  if #expired > 0 then
    redis.call('HDEL', KEYS[6], unpack(expired))
    redis.call('ZREM', KEYS[7], unpack(expired))
  end
  local keptUntil = redis.call('ZSCORE', KEYS[7], ARGV[9])
  if keptUntil and tonumber(keptUntil) > now then
    local kept = redis.call('HGET', KEYS[6], ARGV[9])
    local cut = string.find(kept, ' ', 1, true)
    if string.sub(kept, 1, cut - 1) ~= ARGV[10] then return -4 end
    return {string.sub(kept, cut + 1)}
  end
end
local n = tonumber(h[2])
if n >= tonumber(ARGV[6]) then return -2 end
local seq = tonumber(h[3]) + 1
local json = ARGV[2] .. seq .. ARGV[3]
local member = string.format('%010d', seq) .. json
redis.call('ZADD', KEYS[2], ARGV[4], member)
redis.call('ZADD', KEYS[5], seq, member)
redis.call('HSET', KEYS[3], ARGV[1], seq)
-- One write of the record: seq, count, and the activity time (never going back).
redis.call('HSET', KEYS[1], 's', seq, 'n', n + 1, 'a', math.max(tonumber(ARGV[5]), tonumber(h[1])))
redis.call('XADD', KEYS[4], 'MAXLEN', ARGV[8], seq .. '-0', 't', 'c', 'd', json)
redis.call('SPUBLISH', ARGV[7], seq .. ' message.created ' .. json)
if keyed then
  redis.call('HSET', KEYS[6], ARGV[9], ARGV[10] .. ' ' .. json)
  redis.call('ZADD', KEYS[7], tonumber(ARGV[5]) + tonumber(ARGV[11]), ARGV[9])
end
return seq`,
  },
  /** ARGV message id, now, channel, replay limit. The seq the delete takes. */
  chatDelete: {
    numberOfKeys: 5,
    lua: `
local h = redis.call('HMGET', KEYS[1], 'a', 'n', 's')
if not h[1] then return -1 end
local ref = redis.call('HGET', KEYS[3], ARGV[1])
if not ref then return -3 end
-- The seq index finds the member at once; the same member is in the timestamp set.
local member = redis.call('ZRANGEBYSCORE', KEYS[5], ref, ref)[1]
redis.call('ZREM', KEYS[2], member)
redis.call('ZREM', KEYS[5], member)
redis.call('HDEL', KEYS[3], ARGV[1])
local seq = tonumber(h[3]) + 1
redis.call('HSET', KEYS[1], 's', seq, 'n', tonumber(h[2]) - 1, 'a', math.max(tonumber(ARGV[2]), tonumber(h[1])))
local json = '{"messageId":' .. cjson.encode(ARGV[1]) .. ',"seq":' .. seq .. '}'
redis.call('XADD', KEYS[4], 'MAXLEN', ARGV[4], seq .. '-0', 't', 'd', 'd', json)
redis.call('SPUBLISH', ARGV[3], seq .. ' message.deleted ' .. json)
return seq`,
  },
  /**
   * ARGV sender (customer or agent), seq read, now, channel, replay limit. {-1} or {-5}
   * refused; {0, customer horizon, agent horizon} when the horizon was there already; else
   * {the seq the move takes, customer horizon, agent horizon}. The horizons are fields rc and
   * ra of the record.
   */
  chatRead: {
    numberOfKeys: 5,
    lua: `
local h = redis.call('HMGET', KEYS[1], 'a', 's', 'rc', 'ra')
if not h[1] then return {-1} end
local last = tonumber(h[2])
local want = tonumber(ARGV[2])
if want > last then return {-5} end
local rc = tonumber(h[3] or '0')
local ra = tonumber(h[4] or '0')
local field = 'ra'
local horizon = ra
if ARGV[1] == 'customer' then
  field = 'rc'
  horizon = rc
end
if want <= horizon then return {0, rc, ra} end
if field == 'rc' then rc = want else ra = want end
local seq = last + 1
redis.call('HSET', KEYS[1], 's', seq, field, want, 'a', math.max(tonumber(ARGV[3]), tonumber(h[1])))
local json = '{"sender":' .. cjson.encode(ARGV[1]) .. ',"seq":' .. want .. '}'
redis.call('XADD', KEYS[4], 'MAXLEN', ARGV[5], seq .. '-0', 't', 'r', 'd', json)
redis.call('SPUBLISH', ARGV[4], seq .. ' conversation.read ' .. json)
return {seq, rc, ra}`,
  },
  /**
   * KEYS[1] a conversation's record; ARGV channel, payload. Publishes a typing signal, which
   * is stored nowhere; -1 when the conversation does not exist, else 0.
   */
  chatTyping: {
    numberOfKeys: 1,
    lua: `
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
redis.call('SPUBLISH', ARGV[1], ARGV[2])
return 0`,
  },
  /**
   * KEYS as chatAppend's. ARGV cutoff, channel. {messages removed, 0} when evicted;
   * {-1, lastActivityAt} when active since; {-2, 0} when it does not exist.
   */
  chatEvict: {
    numberOfKeys: 7,
    lua: `
local h = redis.call('HMGET', KEYS[1], 'a', 'n')
if not h[1] then return {-2, 0} end
if tonumber(h[1]) >= tonumber(ARGV[1]) then return {-1, h[1]} end
local s = redis.call('HGET', KEYS[1], 's')
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7])
redis.call('SPUBLISH', ARGV[2], s .. ' conversation.evicted {}')
return {tonumber(h[2]), 0}`,
  },
  /**
   * ARGV after seq. Null when missing; else {last seq, 1 complete | 0 not, entries} where the
   * entries (XRANGE) are the changes after that seq.
   */
  chatChangesAfter: {
    numberOfKeys: 5,
    lua: `
local s = redis.call('HGET', KEYS[1], 's')
if not s then return nil end
local last = tonumber(s)
local after = tonumber(ARGV[1])
if after >= last then return {last, 1, {}} end
local entries = redis.call('XRANGE', KEYS[4], (after + 1) .. '-0', '+')
if #entries == 0 or tonumber(string.match(entries[1][1], '^(%d+)')) > after + 1 then
  return {last, 0, {}}
end
return {last, 1, entries}`,
  },
  /**
   * ARGV mode (after, before or last), cursor seq, limit. Null when missing; else
   * {1 when more exist in the direction of travel, else 0; the members, ascending seq}.
   */
  chatPage: {
    numberOfKeys: 5,
    lua: `
if redis.call('EXISTS', KEYS[1]) == 0 then return nil end
local limit = tonumber(ARGV[3])
local items
if ARGV[1] == 'after' then
  items = redis.call('ZRANGE', KEYS[5], '(' .. ARGV[2], '+inf', 'BYSCORE', 'LIMIT', 0, limit + 1)
else
  local top = '+inf'
  if ARGV[1] == 'before' then top = '(' .. ARGV[2] end
  items = redis.call('ZRANGE', KEYS[5], top, '-inf', 'BYSCORE', 'REV', 'LIMIT', 0, limit + 1)
end
local more = 0
if #items > limit then
  more = 1
  table.remove(items)
end
if ARGV[1] ~= 'after' then
  local ascending = {}
  for i = #items, 1, -1 do ascending[#ascending + 1] = items[i] end
  items = ascending
end
return {more, items}`,
  },
  /**
   * KEYS[1] a key; ARGV a value. Deletes the key only while it holds that value: the
   * sweeper lock by its token.
   */
  chatDeleteIf: {
    numberOfKeys: 1,
    lua: `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`,
  },
  /** KEYS[1] a conversation's record; ARGV the new token hash. 1 when set, 0 when missing. */
  chatSetToken: {
    numberOfKeys: 1,
    lua: `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 't', ARGV[1])
return 1`,
  },
  /**
   * KEYS[1] the counter, KEYS[2] its block; ARGV window ms, limit, block ms. {hits, ms until
   * the window ends, ms until the block ends or 0}. The hit that passes the limit sets the
   * block and drops the counter, so counting starts again once the block is over.
   */
  chatHit: {
    numberOfKeys: 2,
    lua: `
local blocked = redis.call('PTTL', KEYS[2])
if blocked > 0 then return {tonumber(ARGV[2]) + 1, blocked, blocked} end
local hits = redis.call('INCR', KEYS[1])
if hits == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if hits > tonumber(ARGV[2]) then
  redis.call('SET', KEYS[2], 1, 'PX', ARGV[3])
  redis.call('DEL', KEYS[1])
  return {hits, ttl, tonumber(ARGV[3])}
end
return {hits, ttl, 0}`,
  },
} as const;

type Key = string;
type Arg = string | number;

/** The scripts as client commands (ioredis defineCommand). */
export interface RedisScripts {
  chatReserve(meta: Key, max: Arg): Promise<number>;
  chatCreate(
    conv: Key,
    msgs: Key,
    ids: Key,
    events: Key,
    seqs: Key,
    now: Arg,
    tokenHash: Arg,
    fingerprint: Arg,
  ): Promise<[number, string?]>;
  chatGet(
    conv: Key,
    msgs: Key,
    ids: Key,
    events: Key,
    seqs: Key,
    knownVersion: Arg,
  ): Promise<[string, string, string, string, string | null, string | null, string[]?] | null>;
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
  ): Promise<number | [string]>;
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
  ): Promise<number>;
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
  ): Promise<[number, number?, number?]>;
  chatTyping(conv: Key, channel: Arg, payload: Arg): Promise<number>;
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
  ): Promise<[number, string | number]>;
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
  chatSetToken(conv: Key, hash: Arg): Promise<number>;
  chatHit(
    counter: Key,
    block: Key,
    windowMs: Arg,
    limit: Arg,
    blockMs: Arg,
  ): Promise<[number, number, number]>;
}
