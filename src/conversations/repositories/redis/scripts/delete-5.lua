--[[
  Deletes a message: the delete takes the conversation's next seq, and is told as
  message.deleted.

  KEYS[1] conv, KEYS[2] msgs, KEYS[3] ids, KEYS[4] events, KEYS[5] seq: the conversation's keys
  ARGV[1] message id
  ARGV[2] now
  ARGV[3] the conversation's channel
  ARGV[4] replay limit
  ARGV[5] the inbox feed's channel, ARGV[6] the conversation's id

  Returns {the seq the delete took, lastActivityAt, waitingSince, assignee, life, the change's JSON};
  CONVERSATION_NOT_FOUND or
  MESSAGE_NOT_FOUND.
]]
-- record: src/conversations/records/conversation.codec.ts CONVERSATION_FIELDS (a, n, s, rc, ra, uc, ua, ws, as, l)
--@include "codes"
--@include "tellChange"
--@include "countersFrom"
local h = redis.call('HMGET', KEYS[1], 'a', 'n', 's', 'rc', 'ra', 'uc', 'ua', 'as', 'l')
if not h[1] then return CONVERSATION_NOT_FOUND end
local ref = redis.call('HGET', KEYS[3], ARGV[1])
if not ref then return MESSAGE_NOT_FOUND end
-- A record from before the inbox gets its counters, counted whole before the delete.
local kept = keptCounters()
h[6], h[7] = kept[1], kept[2]
-- The seq index finds the member at once; the same member is in the timestamp set.
local member = redis.call('ZRANGEBYSCORE', KEYS[5], ref, ref)[1]
redis.call('ZREM', KEYS[2], member)
redis.call('ZREM', KEYS[5], member)
redis.call('HDEL', KEYS[3], ARGV[1])
-- twin: src/conversations/repositories/memory/in-memory-conversation.repository.ts (the seq step)
local seq = tonumber(h[3]) + 1
local a = math.max(tonumber(ARGV[2]), tonumber(h[1]))
-- twin: src/conversations/repositories/memory/in-memory-conversation.repository.ts (the counters on a delete)
-- A standing message past the other side's horizon was unread by it: one fewer.
local deleted = cjson.decode(string.sub(member, 11))
local counter, horizon = 'uc', tonumber(h[4] or '0')
if deleted.sender == 'customer' then counter, horizon = 'ua', tonumber(h[5] or '0') end
local unread = tonumber(h[6] or '0')
if counter == 'ua' then unread = tonumber(h[7] or '0') end
if tonumber(ref) > horizon and unread > 0 then unread = unread - 1 end
-- waitingSince again: the first customer message after the last agent message, scanning the
-- seq order back from the newest.
local ws = 0
local from = 0
while true do
  local batch = redis.call('ZREVRANGE', KEYS[5], from, from + 49)
  if #batch == 0 then break end
  local agentSeen = false
  for _, m in ipairs(batch) do
    local message = cjson.decode(string.sub(m, 11))
    if message.sender ~= 'customer' then
      agentSeen = true
      break
    end
    ws = message.createdAt
  end
  if agentSeen or #batch < 50 then break end
  from = from + 50
end
redis.call('HSET', KEYS[1], 's', seq, 'n', tonumber(h[2]) - 1, 'a', a, counter, unread, 'ws', ws)
-- twin: src/conversations/repositories/memory/memory-records.ts (the change's JSON)
local json = '{"messageId":' .. cjson.encode(ARGV[1]) .. ',"seq":' .. seq .. '}'
tellChange(seq, 'd', 'message.deleted', json, ARGV[3], ARGV[4])
redis.call('PUBLISH', ARGV[5], 'conversation.updated ' .. ARGV[6])
return {seq, a, ws, h[8] or '', tonumber(h[9] or '0'), json}
