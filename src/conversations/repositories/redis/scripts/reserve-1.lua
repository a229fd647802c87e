--[[
  Takes a place for a new conversation in the store-wide count, unless the store is full.

  KEYS[1] meta                    hash: `conversations`, what the store holds
  ARGV[1] max conversations

  Returns DONE when a place was taken; AT_CAPACITY when the store holds max conversations
  already (nothing changed).
]]
--@include "codes"
-- twin: src/conversations/repositories/memory/in-memory-conversation.repository.ts (capacity)
local n = tonumber(redis.call('HGET', KEYS[1], 'conversations') or '0')
if n >= tonumber(ARGV[1]) then return AT_CAPACITY end
redis.call('HINCRBY', KEYS[1], 'conversations', 1)
return DONE
