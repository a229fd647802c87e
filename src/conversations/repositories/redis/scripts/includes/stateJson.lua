-- The data of a conversation.updated event, as an API key sees it, from the record (KEYS[1])
-- after the change: `changed` is the JSON array's inside ('"status","snoozedUntil"').
-- twin: src/conversations/records/conversation-state.ts (stateChangeJson: the same text)
-- record: src/conversations/records/conversation.codec.ts redisStateOf
local function stateJson(seq, changed)
  local st = redis.call('HMGET', KEYS[1], 'st', 'su', 'as', 'te', 'cu', 'md')
  local function idOrNull(value)
    -- Ids match ^[A-Za-z0-9._:@-]{1,128}$: nothing to escape.
    if value and value ~= '' then return '"' .. value .. '"' end
    return 'null'
  end
  local su = 'null'
  if st[2] and st[2] ~= '0' then su = st[2] end
  return '{"seq":' .. seq .. ',"changed":[' .. changed .. '],"status":"' .. (st[1] or 'open')
    .. '","snoozedUntil":' .. su .. ',"assignee":' .. idOrNull(st[3]) .. ',"team":'
    .. idOrNull(st[4]) .. ',"customer":' .. (st[5] or '{}') .. ',"metadata":' .. (st[6] or '{}')
    .. '}'
end
