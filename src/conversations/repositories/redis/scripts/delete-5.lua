--[[
  Deletes a message: the delete takes the conversation's next seq, and is told as
  message.deleted.

  KEYS[1] conv, KEYS[2] msgs, KEYS[3] ids, KEYS[4] events, KEYS[5] seq: the conversation's keys
  ARGV[1] message id
  ARGV[2] now
  ARGV[3] the conversation's channel
  ARGV[4] replay limit

  Returns the seq the delete took; CONVERSATION_NOT_FOUND or MESSAGE_NOT_FOUND.
]]
-- record: src/conversations/records/conversation.codec.ts CONVERSATION_FIELDS (a, n, s)
--@include "codes"
--@include "tellChange"
local h = redis.call('HMGET', KEYS[1], 'a', 'n', 's')
if not h[1] then return CONVERSATION_NOT_FOUND end
local ref = redis.call('HGET', KEYS[3], ARGV[1])
if not ref then return MESSAGE_NOT_FOUND end
-- The seq index finds the member at once; the same member is in the timestamp set.
local member = redis.call('ZRANGEBYSCORE', KEYS[5], ref, ref)[1]
redis.call('ZREM', KEYS[2], member)
redis.call('ZREM', KEYS[5], member)
redis.call('HDEL', KEYS[3], ARGV[1])
-- twin: src/conversations/repositories/memory/in-memory-conversation.repository.ts (the seq step)
local seq = tonumber(h[3]) + 1
redis.call('HSET', KEYS[1], 's', seq, 'n', tonumber(h[2]) - 1, 'a', math.max(tonumber(ARGV[2]), tonumber(h[1])))
-- twin: src/conversations/repositories/memory/memory-records.ts (the change's JSON)
local json = '{"messageId":' .. cjson.encode(ARGV[1]) .. ',"seq":' .. seq .. '}'
tellChange(seq, 'd', 'message.deleted', json, ARGV[3], ARGV[4])
return seq
