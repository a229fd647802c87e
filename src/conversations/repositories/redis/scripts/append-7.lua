--[[
  Posts a message: it takes the conversation's next seq, and is told as message.created. A
  keyed post (ARGV[9] set) that was stored before gets what it stored, whatever happened since.

  KEYS[1] conv, KEYS[2] msgs, KEYS[3] ids, KEYS[4] events, KEYS[5] seq: the conversation's keys
  KEYS[6] idem                    its kept keyed posts: scoped key -> "<fingerprint> <JSON>"
  KEYS[7] idemx                   their expiry times
  ARGV[1] message id
  ARGV[2] JSON head, ARGV[3] JSON tail: the message's text, less the seq between them
  ARGV[4] timestamp
  ARGV[5] now
  ARGV[6] max messages
  ARGV[7] the conversation's channel
  ARGV[8] replay limit
  ARGV[9] the scoped Idempotency-Key ('' without one)
  ARGV[10] the request's fingerprint
  ARGV[11] how long the key is kept, ms
  ARGV[12] the sender: customer or agent
  ARGV[13] the inbox feed's channel, ARGV[14] the conversation's id

  A customer's post to a snoozed or resolved conversation reopens it in the same step: the
  message takes seq N, the reopen N+1 (status open, no snooze, `ss` N+1), told as
  conversation.updated.

  Returns {the seq the message took, lastActivityAt, waitingSince, the status before ('' when
  no reopen), snoozedUntil before, assignee, life, the reopen's conversation.updated JSON ('' when
  no reopen)}; {the message JSON} for a retry of a keyed post stored
  before; CONVERSATION_NOT_FOUND, KEY_REUSED (the key came with another request) or
  CONVERSATION_FULL.
]]
-- codec: src/conversations/records/message.codec.ts messageJsonAroundSeq (the halves;
-- head .. seq .. tail is the message's MessageJson, as messageJsonWithSeq makes it)
-- record: src/conversations/records/conversation.codec.ts CONVERSATION_FIELDS (a, n, s, st, su, ua, uc, ws, as, te, cu, md, l)
--@include "codes"
--@include "tellChange"
--@include "stateJson"
--@include "countersFrom"
local h = redis.call('HMGET', KEYS[1], 'a', 'n', 's', 'st', 'su', 'ua', 'uc', 'ws', 'as', 'l')
if not h[1] then return CONVERSATION_NOT_FOUND end
local keyed = ARGV[9] ~= ''
if keyed then
  -- Before the limits: a retry gets what the first attempt stored, whatever happened since.
  -- twin: src/conversations/repositories/memory/kept-posts.ts (keyed-post replay)
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
    if string.sub(kept, 1, cut - 1) ~= ARGV[10] then return KEY_REUSED end
    return {string.sub(kept, cut + 1)}
  end
end
local n = tonumber(h[2])
if n >= tonumber(ARGV[6]) then return CONVERSATION_FULL end
if not h[8] then
  -- A record from before the inbox: its counters, counted whole before this message.
  local kept = keptCounters()
  h[7], h[6], h[8] = kept[1], kept[2], kept[3]
end
-- twin: src/conversations/repositories/memory/in-memory-conversation.repository.ts (the seq step)
local seq = tonumber(h[3]) + 1
local json = ARGV[2] .. seq .. ARGV[3]
local member = string.format('%010d', seq) .. json
redis.call('ZADD', KEYS[2], ARGV[4], member)
redis.call('ZADD', KEYS[5], seq, member)
redis.call('HSET', KEYS[3], ARGV[1], seq)
local now = tonumber(ARGV[5])
local a = math.max(now, tonumber(h[1]))
local ws = tonumber(h[8] or '0')
-- twin: src/conversations/repositories/memory/in-memory-conversation.repository.ts (the counters on a post)
local counter, unread
if ARGV[12] == 'customer' then
  counter, unread = 'ua', tonumber(h[6] or '0') + 1
  if ws == 0 then ws = now end
else
  counter, unread = 'uc', tonumber(h[7] or '0') + 1
  ws = 0
end
-- One write of the record: seq, count, counters and the activity time (never going back).
redis.call('HSET', KEYS[1], 's', seq, 'n', n + 1, 'a', a, counter, unread, 'ws', ws)
tellChange(seq, 'c', 'message.created', json, ARGV[7], ARGV[8])
if keyed then
  redis.call('HSET', KEYS[6], ARGV[9], ARGV[10] .. ' ' .. json)
  redis.call('ZADD', KEYS[7], now + tonumber(ARGV[11]), ARGV[9])
end
local before, reopenJson = '', ''
local status = h[4] or 'open'
-- twin: src/conversations/repositories/memory/in-memory-conversation.repository.ts (the reopen by a customer post)
if ARGV[12] == 'customer' and (status == 'snoozed' or status == 'resolved') then
  before = status
  local reopen = seq + 1
  local changed = '"status"'
  if h[5] then changed = changed .. ',"snoozedUntil"' end
  redis.call('HSET', KEYS[1], 's', reopen, 'ss', reopen, 'st', 'open')
  redis.call('HDEL', KEYS[1], 'su')
  reopenJson = stateJson(reopen, changed)
  tellChange(reopen, 'u', 'conversation.updated', reopenJson, ARGV[7], ARGV[8])
end
redis.call('PUBLISH', ARGV[13], 'conversation.updated ' .. ARGV[14])
return {seq, a, ws, before, tonumber(h[5] or '0'), h[9] or '', tonumber(h[10] or '0'), reopenJson}
