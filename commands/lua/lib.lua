-- Functions the batch scripts share; commands/scripts.go puts this file in
-- front of each of them.

-- append_events appends ONE outbox entry holding events in order, in
-- fields "1", "2", … (docs/CONTRACTS.md), if there are any.
local function append_events(outbox, events)
  if #events == 0 then
    return
  end
  local fields = {}
  for j = 1, #events do
    fields[#fields + 1] = tostring(j)
    fields[#fields + 1] = events[j]
  end
  redis.call('XADD', outbox, '*', unpack(fields))
end

-- sync_write writes when asked to (flag '1') and the script wrote nothing:
-- WAIT covers this connection's writes only, and an answer that reports an
-- order another connection wrote must be covered too (commands/durable.go).
local function sync_write(hash, flag, wrote)
  if flag == '1' and not wrote then
    redis.call('INCR', hash .. ':sync')
  end
end
