--[[
  Sets the inbox counts to what a reindex counted from the records it walked, only if no
  change moved them during the walk (their `~gen` is still what the walk read first):
  otherwise the counts the second steps kept stand, and setting the walk's would lose the
  changes it did not see.

  KEYS[1] the counts hash ({ix:counts})
  ARGV[1] the `~gen` read before the walk ('' when there was none)
  ARGV[2], ARGV[3], ...: field, count pairs

  Returns 1 when set, 0 when counts moved meanwhile.
]]
local gen = redis.call('HGET', KEYS[1], '~gen') or ''
if gen ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
if #ARGV > 1 then
  redis.call('HSET', KEYS[1], unpack(ARGV, 2))
  if gen ~= '' then redis.call('HSET', KEYS[1], '~gen', gen) end
end
return 1
