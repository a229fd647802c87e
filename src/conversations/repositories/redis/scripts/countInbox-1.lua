--[[
  Moves the inbox counts (RedisInboxIndex.counts): adds each delta to its field, and removes a
  field that comes to 0 or below, so that an empty store leaves no counts key behind.

  KEYS[1] the counts hash ({ix:counts})
  ARGV[1], ARGV[2], ...: field, delta pairs

  Every call also moves `~gen`, which a reindex reads before its walk: a count it made from
  records walked while counts moved is not set (setInboxCounts-1.lua). A hash left with no
  count is removed, `~gen` with it.

  Returns DONE.
]]
--@include "codes"
for i = 1, #ARGV, 2 do
  if redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]) <= 0 then
    redis.call('HDEL', KEYS[1], ARGV[i])
  end
end
redis.call('HINCRBY', KEYS[1], '~gen', 1)
-- No count left but the generation: no key left behind.
if redis.call('HLEN', KEYS[1]) == 1 then redis.call('DEL', KEYS[1]) end
return DONE
