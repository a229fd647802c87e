--[[
  A page of a conversation's messages in seq order.

  KEYS[1] conv, KEYS[5] seq       the record, and the messages by seq
  KEYS[2] msgs, KEYS[3] ids, KEYS[4] events: its other keys (untouched)
  ARGV[1] mode: after, before or last
  ARGV[2] the cursor seq (unused for last)
  ARGV[3] limit

  Returns nil when the conversation does not exist; else {1 when more exist in the direction
  of travel, else 0; the members, ascending seq}.
]]
if redis.call('EXISTS', KEYS[1]) == 0 then return nil end
local limit = tonumber(ARGV[3])
local items
if ARGV[1] == 'after' then
  items = redis.call('ZRANGE', KEYS[5], '(' .. ARGV[2], '+inf', 'BYSCORE', 'LIMIT', 0, limit + 1)
else
  local top = '+inf'
  if ARGV[1] == 'before' then top = '(' .. ARGV[2] end
  items = redis.call('ZRANGE', KEYS[5], top, '-inf', 'BYSCORE', 'REV', 'LIMIT', 0, limit + 1)
end
local more = 0
if #items > limit then
  more = 1
  table.remove(items)
end
if ARGV[1] ~= 'after' then
  local ascending = {}
  for i = #items, 1, -1 do ascending[#ascending + 1] = items[i] end
  items = ascending
end
return {more, items}
