--[[
  Evicts a conversation whose own last activity is before the cutoff: every key of it goes,
  and conversation.evicted is published (with its last seq).

  KEYS[1] conv, KEYS[2] msgs, KEYS[3] ids, KEYS[4] events, KEYS[5] seq, KEYS[6] idem,
  KEYS[7] idemx: every key of the conversation, as append's
  ARGV[1] cutoff
  ARGV[2] the conversation's channel
  ARGV[3] the inbox feed's channel, ARGV[4] the conversation's id

  Idle time counts from the later of the last activity and the snooze's end, so a snoozed
  conversation stays until CONVERSATION_TTL_MS after it wakes.

  Returns {messages removed, 0, status, assignee} when evicted; {STILL_ACTIVE, the later of
  lastActivityAt and snoozedUntil} when active since the cutoff; {CONVERSATION_NOT_FOUND, 0}
  when it does not exist.
]]
-- record: src/conversations/records/conversation.codec.ts CONVERSATION_FIELDS (a, n, s, su, st, as)
--@include "codes"
local h = redis.call('HMGET', KEYS[1], 'a', 'n', 'su', 'st', 'as')
if not h[1] then return {CONVERSATION_NOT_FOUND, 0} end
local idleFrom = math.max(tonumber(h[1]), tonumber(h[3] or '0'))
if idleFrom >= tonumber(ARGV[1]) then return {STILL_ACTIVE, idleFrom} end
local s = redis.call('HGET', KEYS[1], 's')
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7])
redis.call('SPUBLISH', ARGV[2], s .. ' conversation.evicted {}')
redis.call('PUBLISH', ARGV[3], 'conversation.evicted ' .. ARGV[4])
return {tonumber(h[2]), 0, h[4] or 'open', h[5] or ''}
