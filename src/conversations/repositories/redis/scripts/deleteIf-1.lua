--[[
  Deletes a key only while it holds a value: the sweeper lock, by its holder's token.

  KEYS[1] the key
  ARGV[1] the value

  Returns 1 when deleted, else 0.
]]
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
