"""The Lua scripts run inside Redis, each one atomic: no other command runs between its reads and writes.

Times are Redis server time in milliseconds (`TIME`), so members' clocks never have to agree.
"""
from __future__ import annotations

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# KEYS: member hash, members index, member's reservations. ARGV: member id, ttl ms, fields (JSON object),
# then the reservations this member has taken up (their calls now count in its own `calls`).
HEARTBEAT = _NOW + """
local fields = cjson.decode(ARGV[3])
local flat = {}
for k, v in pairs(fields) do flat[#flat + 1] = k; flat[#flat + 1] = v end
redis.call('HSET', KEYS[1], unpack(flat))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[1])
if #ARGV > 3 then redis.call('ZREM', KEYS[3], unpack(ARGV, 4)) end
return now
"""

# ARGV: namespace. Returns [hash as flat list, live reservations, ...] per live member.
LIVE_MEMBERS = _NOW + """
local ns = ARGV[1]
local out = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', ns .. ':members', now, '+inf')) do
  local h = redis.call('HGETALL', ns .. ':member:' .. id)
  if #h > 0 then
    out[#out + 1] = h
    out[#out + 1] = redis.call('ZCOUNT', ns .. ':reserved:' .. id, now, '+inf')
  end
end
return out
"""

# ARGV: namespace, reservation id, reservation ttl ms. Picks the live, non-draining member with room whose
# load (its calls plus its live reservations) is the smallest share of its capacity (no limit: 0 % + calls
# / 1e9); ties go to fewer calls, then to the smaller id. Reserves a place on it. Returns {id, url, sip, load}
# or false when no member has room.
PLACE = _NOW + """
local ns, rid, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', ns .. ':members', '-inf', now)
local best, best_share, best_load, best_url, best_sip
for _, id in ipairs(redis.call('ZRANGE', ns .. ':members', 0, -1)) do
  local f = redis.call('HMGET', ns .. ':member:' .. id, 'calls', 'capacity', 'draining', 'url', 'sip')
  if f[1] and f[3] == '0' then
    local rkey = ns .. ':reserved:' .. id
    redis.call('ZREMRANGEBYSCORE', rkey, '-inf', now)
    local load = tonumber(f[1]) + redis.call('ZCARD', rkey)
    local cap = tonumber(f[2])
    if cap == 0 or load < cap then
      local share = (cap == 0) and (load / 1e9) or (load / cap)
      if best == nil or share < best_share or (share == best_share and (load < best_load
          or (load == best_load and id < best))) then
        best, best_share, best_load, best_url, best_sip = id, share, load, f[4], f[5]
      end
    end
  end
end
if best == nil then return false end
local rkey = ns .. ':reserved:' .. best
redis.call('ZADD', rkey, now + ttl, rid)
redis.call('PEXPIRE', rkey, ttl * 2)
return {best, best_url, best_sip, best_load}
"""

# One token bucket shared by every member. KEYS: the bucket hash. ARGV: tokens per second, burst. Returns the
# seconds until a token is back as a string ("0": a token was taken); Lua numbers would come back truncated.
TAKE_TOKEN = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local b = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(b[1]) or burst
local at = tonumber(b[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return tostring(wait)
"""
