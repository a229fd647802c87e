--[[
  Reads a conversation: its record's fields and, unless the caller's copy is still current,
  its messages.

  KEYS[1] conv, KEYS[2] msgs      the record, and the messages by timestamp
  KEYS[3] ids, KEYS[4] events, KEYS[5] seq: its other keys (untouched)
  ARGV[1] the version (seq) the caller holds (-1: none), ARGV[2] the life it holds
  ARGV[3...] the record's fields to answer, `s` (its last seq) and `l` (its life) first
          (REDIS_HEADER_FIELDS)

  Returns nil when the conversation does not exist; else {the fields' values (false: absent;
  a life made before lives were kept reads as 0)}, with every message member (ascending
  timestamp) as a second element unless the version is still ARGV[1] and the life ARGV[2].
]]
-- record: src/conversations/records/conversation.codec.ts CONVERSATION_FIELDS (s, l)
local h = redis.call('HMGET', KEYS[1], unpack(ARGV, 3))
if not h[1] then return nil end
if h[1] == ARGV[1] and (h[2] or '0') == ARGV[2] then return {h} end
return {h, redis.call('ZRANGE', KEYS[2], 0, -1)}
