--[[
  Moves the inbox counts (RedisInboxIndex.counts): adds each delta to its field, and removes a
  field that comes to 0 or below, so that an empty store leaves no counts key behind.

  KEYS[1] the counts hash ({ix:counts})
  ARGV[1], ARGV[2], ...: field, delta pairs

  Returns DONE.
]]
--@include "codes"
for i = 1, #ARGV, 2 do
  if redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]) <= 0 then
    redis.call('HDEL', KEYS[1], ARGV[i])
  end
end
return DONE
