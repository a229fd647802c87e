--[[
  The changes to a conversation after a seq, from its event stream.

  KEYS[1] conv, KEYS[4] events    the record, and the stream of the last changes
  KEYS[2] msgs, KEYS[3] ids, KEYS[5] seq: its other keys (untouched)
  ARGV[1] the seq to start after

  Returns nil when the conversation does not exist; else {last seq, 1 when complete, the
  stream entries after that seq (XRANGE)}, or {last seq, 0, {}} when the stream no longer
  reaches back to that seq.
]]
-- record: src/conversations/records/conversation.codec.ts CONVERSATION_FIELDS (s)
local s = redis.call('HGET', KEYS[1], 's')
if not s then return nil end
local last = tonumber(s)
local after = tonumber(ARGV[1])
if after >= last then return {last, 1, {}} end
-- twin: src/conversations/repositories/memory/in-memory-conversation.repository.ts (replay completeness)
local entries = redis.call('XRANGE', KEYS[4], (after + 1) .. '-0', '+')
if #entries == 0 or tonumber(string.match(entries[1][1], '^(%d+)')) > after + 1 then
  return {last, 0, {}}
end
return {last, 1, entries}
