--[[
  The next entries of one bucket of an inbox index after a position, in the traversal's
  order: descending score then descending member ('desc', the activity index), or ascending
  score then ascending member ('asc', the waiting queue). Read only.

  KEYS[1] the bucket (a sorted set: score the sort key, member the conversation id)
  ARGV[1] 'desc' or 'asc'
  ARGV[2] the position's key, ARGV[3] its id ('' with no position: from the start)
  ARGV[4] how many entries

  Returns the entries as ZRANGE WITHSCORES gives them: {id, score, id, score, ...}.
]]
-- Bytewise, as a sorted set orders members (Lua's `<` follows the server's locale).
local function before(a, b)
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end
local desc = ARGV[1] == 'desc'
local count = tonumber(ARGV[4])
local start = 0
if ARGV[3] ~= '' then
  local key = ARGV[2]
  local id = ARGV[3]
  -- Past every entry ahead of the position's key, then past the entries of that key up to
  -- and including its id (ties are in member order, as the traversal's).
  if desc then
    start = redis.call('ZCOUNT', KEYS[1], '(' .. key, '+inf')
  else
    start = redis.call('ZCOUNT', KEYS[1], '-inf', '(' .. key)
  end
  local k = tonumber(key)
  while true do
    local batch
    if desc then
      batch = redis.call('ZRANGE', KEYS[1], start, start + 99, 'REV', 'WITHSCORES')
    else
      batch = redis.call('ZRANGE', KEYS[1], start, start + 99, 'WITHSCORES')
    end
    local passed = 0
    local stop = false
    for i = 1, #batch, 2 do
      local member, score = batch[i], tonumber(batch[i + 1])
      if score ~= k or (desc and before(member, id)) or (not desc and before(id, member)) then
        stop = true
        break
      end
      passed = passed + 1
    end
    start = start + passed
    if stop or #batch < 200 then break end
  end
end
if desc then
  return redis.call('ZRANGE', KEYS[1], start, start + count - 1, 'REV', 'WITHSCORES')
end
return redis.call('ZRANGE', KEYS[1], start, start + count - 1, 'WITHSCORES')
