--[[
  A read receipt: moves the sender's read horizon (fields rc and ra of the record) up to a
  seq, taken down to the seq of the last standing message at or below it (the seq index).
  A move takes the conversation's next seq, is activity, and is told as conversation.read;
  a seq that comes down to the horizon or below changes nothing.

  KEYS[1] conv, KEYS[2] msgs, KEYS[3] ids, KEYS[4] events, KEYS[5] seq: the conversation's keys
  ARGV[1] sender: customer or agent
  ARGV[2] the seq read up to
  ARGV[3] now
  ARGV[4] the conversation's channel
  ARGV[5] replay limit
  ARGV[6] the inbox feed's channel, ARGV[7] the conversation's id

  Returns {the seq the move took, customer horizon, agent horizon, lastActivityAt, assignee,
  life, the change's JSON};
  {UNCHANGED, customer horizon, agent horizon} when the horizon was there already;
  {CONVERSATION_NOT_FOUND} or {SEQ_BEYOND_LAST}.
]]
-- record: src/conversations/records/conversation.codec.ts CONVERSATION_FIELDS (a, s, rc, ra, uc, ua, as, l)
--@include "codes"
--@include "tellChange"
--@include "countersFrom"
local h = redis.call('HMGET', KEYS[1], 'a', 's', 'rc', 'ra', 'as', 'l')
if not h[1] then return {CONVERSATION_NOT_FOUND} end
local last = tonumber(h[2])
local want = tonumber(ARGV[2])
if want > last then return {SEQ_BEYOND_LAST} end
local rc = tonumber(h[3] or '0')
local ra = tonumber(h[4] or '0')
local field = 'ra'
local horizon = ra
if ARGV[1] == 'customer' then
  field = 'rc'
  horizon = rc
end
if want <= horizon then return {UNCHANGED, rc, ra} end
-- twin: src/conversations/repositories/memory/in-memory-conversation.repository.ts (the read-receipt clamp)
local below = redis.call('ZREVRANGEBYSCORE', KEYS[5], want, '-inf', 'WITHSCORES', 'LIMIT', 0, 1)
want = tonumber(below[2] or '0')
if want <= horizon then return {UNCHANGED, rc, ra} end
if field == 'rc' then rc = want else ra = want end
-- twin: src/conversations/repositories/memory/in-memory-conversation.repository.ts (the seq step)
local seq = last + 1
local a = math.max(tonumber(ARGV[3]), tonumber(h[1]))
-- A record from before the inbox gets its counters (the other side's among them) first.
keptCounters()
-- twin: src/conversations/repositories/memory/in-memory-conversation.repository.ts (the counters on a read)
-- What this side has not read: the other side's standing messages above the new horizon.
local other, counter = 'agent', 'uc'
if field == 'ra' then other, counter = 'customer', 'ua' end
local unread = 0
for _, m in ipairs(redis.call('ZRANGE', KEYS[5], '(' .. want, '+inf', 'BYSCORE')) do
  if cjson.decode(string.sub(m, 11)).sender == other then unread = unread + 1 end
end
redis.call('HSET', KEYS[1], 's', seq, field, want, 'a', a, counter, unread)
-- twin: src/conversations/repositories/memory/memory-records.ts (the change's JSON)
local json = '{"sender":' .. cjson.encode(ARGV[1]) .. ',"seq":' .. want .. '}'
tellChange(seq, 'r', 'conversation.read', json, ARGV[4], ARGV[5])
redis.call('PUBLISH', ARGV[6], 'conversation.updated ' .. ARGV[7])
return {seq, rc, ra, a, h[5] or '', tonumber(h[6] or '0'), json}
