--[[
  Marks changes of a conversation as queued in the webhooks' outbox (src/webhooks/redis/):
  `w` is the contiguous mark (every change with a seq up to it has an outbox entry; the
  creation counts as seq 0, so -1 means its conversation.created is not queued yet), `wd` the
  seqs queued above w + 1 (comma-separated; absent when none), `wt` when w last moved. Two
  writers of one conversation may queue seq 5 before seq 4, and the one with 4 may die: the
  mark then stays at 3, and the reconcile pass finds 4 (a plain max would hide it).

  KEYS[1] conv                    the conversation's record
  ARGV[1] the life the changes were applied to (a conversation made again under the id is not
          marked by a late call for its predecessor)
  ARGV[2] now
  ARGV[3...] the seqs queued

  A record without `w` (made while nothing was queued, or before the outbox) starts its mark
  below the lowest seq given. Returns the mark after the call; nil when the record is gone or
  of another life.
]]
-- record: src/conversations/records/conversation.codec.ts CONVERSATION_FIELDS (l); the mark's
-- fields w, wd, wt: src/conversations/repositories/redis/redis-keys.ts
local h = redis.call('HMGET', KEYS[1], 'l', 'w', 'wd')
if not h[1] or h[1] ~= ARGV[1] then return nil end
local done = {}
local lowest = nil
for i = 3, #ARGV do
  local seq = tonumber(ARGV[i])
  done[seq] = true
  if not lowest or seq < lowest then lowest = seq end
end
if not lowest then return tonumber(h[2]) end
local w = tonumber(h[2] or (lowest - 1))
if h[3] then
  for seq in string.gmatch(h[3], '%-?%d+') do done[tonumber(seq)] = true end
end
local moved = false
while done[w + 1] do
  w = w + 1
  moved = true
end
local above = {}
for seq in pairs(done) do
  if seq > w then above[#above + 1] = seq end
end
table.sort(above)
if #above > 0 then
  redis.call('HSET', KEYS[1], 'wd', table.concat(above, ','))
else
  redis.call('HDEL', KEYS[1], 'wd')
end
if moved or not h[2] then redis.call('HSET', KEYS[1], 'w', w, 'wt', ARGV[2]) end
return w
