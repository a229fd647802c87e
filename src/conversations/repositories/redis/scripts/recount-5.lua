--[[
  Gives a record from before the inbox its counters (see includes/countersFrom.lua): what the
  backfill runs for each record without `ws`. Changes nothing else, takes no seq.

  KEYS[1] conv, KEYS[5] seq       the record, and the messages in seq order
  KEYS[2] msgs, KEYS[3] ids, KEYS[4] events: its other keys (untouched)

  Returns {unreadCustomer, unreadAgent, waitingSince}; {} when the conversation does not exist.
]]
--@include "countersFrom"
if redis.call('EXISTS', KEYS[1]) == 0 then return {} end
return keptCounters()
