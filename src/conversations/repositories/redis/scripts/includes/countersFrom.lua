-- A record from before the inbox keeps no counters (no `ws`): they are counted whole from
-- the standing messages in seq order (KEYS[5]) and the read horizons, written, and answered
-- as {uc, ua, ws}; a record that keeps them answers them as kept.
-- twin: src/conversations/records/conversation.codec.ts (countersFrom)
-- record: src/conversations/records/conversation.codec.ts CONVERSATION_FIELDS
local function keptCounters()
  local h = redis.call('HMGET', KEYS[1], 'uc', 'ua', 'ws', 'rc', 'ra')
  if h[3] then return {tonumber(h[1] or '0'), tonumber(h[2] or '0'), tonumber(h[3])} end
  local rc, ra = tonumber(h[4] or '0'), tonumber(h[5] or '0')
  local uc, ua, ws = 0, 0, 0
  for _, m in ipairs(redis.call('ZRANGE', KEYS[5], 0, -1)) do
    local message = cjson.decode(string.sub(m, 11))
    if message.sender == 'customer' then
      if message.seq > ra then ua = ua + 1 end
      if ws == 0 then ws = message.createdAt end
    else
      if message.seq > rc then uc = uc + 1 end
      ws = 0
    end
  end
  redis.call('HSET', KEYS[1], 'uc', uc, 'ua', ua, 'ws', ws)
  return {uc, ua, ws}
end
