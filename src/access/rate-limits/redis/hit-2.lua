--[[
  Counts hits against a rate limit, in a fixed window that begins with its first hit: ARGV[4]
  of them when they all fit under the limit, as many as fit when fewer do, else one. The hit
  that passes the limit sets the block and drops the counter, so counting starts again once
  the block is over; while blocked, hits are not counted.

  KEYS[1] the counter             string, expiring with its window
  KEYS[2] its block               string, present while blocked, expiring with the block
  ARGV[1] window ms
  ARGV[2] limit
  ARGV[3] block ms
  ARGV[4] hits wanted (1, or more when a process reserves hits ahead)

  Returns {hits, ms until the window ends, ms until the block ends or 0, hits counted}.
]]
-- twin: src/access/rate-limits/memory/in-memory-rate-limit.store.ts
local limit = tonumber(ARGV[2])
local blocked = redis.call('PTTL', KEYS[2])
if blocked > 0 then return {limit + 1, blocked, blocked, 0} end
local room = limit - tonumber(redis.call('GET', KEYS[1]) or '0')
local counted = math.max(1, math.min(tonumber(ARGV[4]), room))
local hits = redis.call('INCRBY', KEYS[1], counted)
if hits == counted then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if hits > limit then
  redis.call('SET', KEYS[2], 1, 'PX', ARGV[3])
  redis.call('DEL', KEYS[1])
  return {hits, ttl, tonumber(ARGV[3]), counted}
end
return {hits, ttl, 0, counted}
