--[[
  Reads a conversation: its summary, its read horizons and, unless the caller's copy is still
  current, its messages.

  KEYS[1] conv, KEYS[2] msgs      the record, and the messages by timestamp
  KEYS[3] ids, KEYS[4] events, KEYS[5] seq: its other keys (untouched)
  ARGV[1] the version (seq) the caller holds (-1: none), ARGV[2] the life it holds

  Returns nil when the conversation does not exist; else {createdAt, lastActivityAt, seq,
  count, the customer's horizon, the agent's horizon (false: none yet), life (false: made
  before lives were kept, read as 0)}, followed by every message member (ascending timestamp)
  unless the version is still ARGV[1] and the life ARGV[2].
]]
local h = redis.call('HMGET', KEYS[1], 'c', 'a', 's', 'n', 'rc', 'ra', 'l')
if not h[1] then return nil end
if h[3] == ARGV[1] and (h[7] or '0') == ARGV[2] then return h end
h[8] = redis.call('ZRANGE', KEYS[2], 0, -1)
return h
