--[[
  Reads a conversation: its summary, its read horizons and, unless the caller's copy is still
  current, its messages.

  KEYS[1] conv, KEYS[2] msgs      the record, and the messages by timestamp
  KEYS[3] ids, KEYS[4] events, KEYS[5] seq: its other keys (untouched)
  ARGV[1] the version the caller holds (-1: none)

  Returns nil when the conversation does not exist; else {createdAt, lastActivityAt, seq,
  count, the customer's horizon, the agent's horizon (false: none yet)}, followed by every
  message member (ascending timestamp) unless the version is still ARGV[1].
]]
local h = redis.call('HMGET', KEYS[1], 'c', 'a', 's', 'n', 'rc', 'ra')
if not h[1] then return nil end
if h[3] == ARGV[1] then return h end
h[7] = redis.call('ZRANGE', KEYS[2], 0, -1)
return h
