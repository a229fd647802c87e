-- Tells a change to a conversation: appends it to the conversation's event stream (KEYS[4];
-- entry id <seq>-0, `t` the change's letter, `d` its JSON; the last replayLimit kept) and
-- publishes it on the conversation's channel, in its own slot, as "<seq> <type> <JSON>".
-- twin: src/conversations/repositories/memory/in-memory-conversation.repository.ts (the cut-off: tellChange)
-- twin: src/conversations/repositories/redis/change-codec.ts (the forms decoded)
local function tellChange(seq, letter, changeType, json, channel, replayLimit)
  redis.call('XADD', KEYS[4], 'MAXLEN', replayLimit, seq .. '-0', 't', letter, 'd', json)
  redis.call('SPUBLISH', channel, seq .. ' ' .. changeType .. ' ' .. json)
end
