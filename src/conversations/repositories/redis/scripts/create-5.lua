--[[
  Makes a conversation's record, when the caller holds a capacity place for it. A keyed
  create's id comes from its key, so a record that exists already means a retry: it is
  answered as it was made, with the new token hash. Without a place (the store is full), it
  only answers such a retry.

  KEYS[1] conv                    the conversation's record (hash)
  KEYS[2] msgs, KEYS[3] ids, KEYS[4] events, KEYS[5] seq: its other keys (untouched)
  ARGV[1] the keyed create's request fingerprint ('' without a key)
  ARGV[2] '1' when the caller holds a place and may make the record, '0' when it may not
  ARGV[3] the customer token's hash ('' without one), ARGV[4] who minted it ('k' an API key,
          'a' anyone else): put in place on a retry (redisTokenOf)
  ARGV[5] the inbox feed's channel, ARGV[6] the conversation's id
  ARGV[7...] the new record's fields and values, as HSET takes them (redisHashOf: with its
          state, stateSeq 0 and counters 0)

  Returns {DONE} when made; {EXISTS, createdAt} for a retry of the same request (the token
  hash and its mark put in place); {KEY_REUSED} when it exists and this is another request, or
  no keyed create at all; {CONVERSATION_NOT_FOUND} when it does not exist and may not be made.
]]
-- record: src/conversations/records/conversation.codec.ts redisHashOf
--@include "codes"
local made = redis.call('HMGET', KEYS[1], 'c', 'k')
if made[1] then
  if ARGV[1] == '' or made[2] ~= ARGV[1] then return {KEY_REUSED} end
  redis.call('HSET', KEYS[1], 't', ARGV[3], 'tm', ARGV[4])
  return {EXISTS, made[1]}
end
-- twin: src/conversations/repositories/memory/in-memory-conversation.repository.ts (capacity: a keyed retry is answered even at capacity)
if ARGV[2] ~= '1' then return {CONVERSATION_NOT_FOUND} end
redis.call('HSET', KEYS[1], unpack(ARGV, 7))
redis.call('PUBLISH', ARGV[5], 'conversation.created ' .. ARGV[6])
return {DONE}
