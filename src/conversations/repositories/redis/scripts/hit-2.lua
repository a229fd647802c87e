--[[
  Counts one hit against a rate limit, in a fixed window that begins with its first hit. The
  hit that passes the limit sets the block and drops the counter, so counting starts again
  once the block is over; while blocked, hits are not counted.

  KEYS[1] the counter             string, expiring with its window
  KEYS[2] its block               string, present while blocked, expiring with the block
  ARGV[1] window ms
  ARGV[2] limit
  ARGV[3] block ms

  Returns {hits, ms until the window ends, ms until the block ends or 0}.
]]
local blocked = redis.call('PTTL', KEYS[2])
if blocked > 0 then return {tonumber(ARGV[2]) + 1, blocked, blocked} end
local hits = redis.call('INCR', KEYS[1])
if hits == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if hits > tonumber(ARGV[2]) then
  redis.call('SET', KEYS[2], 1, 'PX', ARGV[3])
  redis.call('DEL', KEYS[1])
  return {hits, ttl, tonumber(ARGV[3])}
end
return {hits, ttl, 0}
