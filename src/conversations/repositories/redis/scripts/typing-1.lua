--[[
  Publishes a typing signal on the conversation's channel; it is stored nowhere.

  KEYS[1] conv                    the conversation's record
  ARGV[1] the conversation's channel
  ARGV[2] the payload: "typing <JSON>"

  Returns DONE; CONVERSATION_NOT_FOUND.
]]
--@include "codes"
if redis.call('EXISTS', KEYS[1]) == 0 then return CONVERSATION_NOT_FOUND end
redis.call('SPUBLISH', ARGV[1], ARGV[2])
return DONE
