--[[
  Marks a conversation as counted in the inbox counts, once: a create's record carries the
  mark (its second step counts it); a record from before the inbox does not, and the reindex
  that marks it first adds it to the counts.

  KEYS[1] the conversation's record (conv)

  Returns 1 when this call marked it, 0 when it was marked already or is gone.
]]
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
return redis.call('HSETNX', KEYS[1], 'ic', 1)
