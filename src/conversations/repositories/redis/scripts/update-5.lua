--[[
  Writes a state change computed from a read of the record (patchedState, in TypeScript),
  only if the record is still as read: the same life (`l`) and the same state seq (`ss`).
  The change takes the conversation's next seq, sets `ss` to it, is activity, and is told
  as conversation.updated.

  KEYS[1] conv, KEYS[2] msgs, KEYS[3] ids, KEYS[4] events, KEYS[5] seq: the conversation's keys
  ARGV[1] the state seq read ('0' when absent), ARGV[2] the life read ('0' when absent)
  ARGV[3] now
  ARGV[4] the conversation's channel
  ARGV[5] replay limit
  ARGV[6] the inbox feed's channel, ARGV[7] the conversation's id
  ARGV[8] the event's JSON after its seq: stateChangeJson less its leading '{"seq":<seq>'
  ARGV[9] '1' to remove `su` (no snooze after the change)
  ARGV[10...] the state's fields and values, as HSET takes them (redisStateOf)

  Returns {the seq the change took, lastActivityAt}; {STALE} when the record changed since it
  was read (read again); {CONVERSATION_NOT_FOUND}.
]]
-- record: src/conversations/records/conversation.codec.ts redisStateOf
--@include "codes"
--@include "tellChange"
local h = redis.call('HMGET', KEYS[1], 's', 'l', 'ss', 'a')
if not h[1] then return {CONVERSATION_NOT_FOUND} end
if (h[3] or '0') ~= ARGV[1] or (h[2] or '0') ~= ARGV[2] then return {STALE} end
local seq = tonumber(h[1]) + 1
local a = math.max(tonumber(ARGV[3]), tonumber(h[4]))
redis.call('HSET', KEYS[1], 's', seq, 'ss', seq, 'a', a, unpack(ARGV, 10))
if ARGV[9] == '1' then redis.call('HDEL', KEYS[1], 'su') end
tellChange(seq, 'u', 'conversation.updated', '{"seq":' .. seq .. ARGV[8], ARGV[4], ARGV[5])
redis.call('PUBLISH', ARGV[6], 'conversation.updated ' .. ARGV[7])
return {seq, a}
