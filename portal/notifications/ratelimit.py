"""Per-channel send rate, shared by every worker: a slot schedule in Redis.

Each send takes the next free slot of its channel (slots ``1/rate`` seconds apart) and waits
for it; a service that asked us to wait (Telegram's 429 ``retry_after``) pauses the whole
channel until then. One Lua script, so parallel workers never take the same slot."""
from __future__ import annotations

from ..queue import get_redis

# KEYS: the slot key, the pause key; ARGV: the gap between slots (ms), the longest wait the
# caller takes (ms). Returns ms to wait; a slot further away than that is not reserved (the
# caller comes back later), so postponed messages never push the schedule ahead.
_TAKE = """
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local slot = math.max(now, tonumber(redis.call("GET", KEYS[1]) or 0), tonumber(redis.call("GET", KEYS[2]) or 0))
if slot - now > tonumber(ARGV[2]) then return slot - now end
local gap = tonumber(ARGV[1])
redis.call("SET", KEYS[1], slot + gap, "PX", math.max(1000, slot + gap - now + 1000))
return slot - now
"""
_PAUSE = """
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local until_ms = now + tonumber(ARGV[1])
if until_ms > tonumber(redis.call("GET", KEYS[1]) or 0) then
  redis.call("SET", KEYS[1], until_ms, "PX", tonumber(ARGV[1]) + 1000)
end
return until_ms - now
"""
_scripts: dict = {}


def _script(name: str, source: str):
    conn = get_redis()
    key = (id(conn), name)
    if key not in _scripts or _scripts[key][0] is not conn:
        _scripts[key] = (conn, conn.register_script(source))
    return _scripts[key][1]


def _keys(kind: str) -> list[str]:
    return [f"portal:notify:slot:{kind}", f"portal:notify:pause:{kind}"]


def take(kind: str, rate: int, max_wait: float = 3600) -> float:
    """Reserve the channel's next slot if it is at most ``max_wait`` seconds away; the seconds
    to wait for it (0: go now; above ``max_wait``: nothing reserved, come back then)."""
    return int(_script("take", _TAKE)(keys=_keys(kind), args=[max(1, round(1000 / rate)),
                                                               round(max_wait * 1000)])) / 1000


def pause(kind: str, seconds: float) -> None:
    """No send on this channel for ``seconds`` (the service asked us to wait)."""
    _script("pause", _PAUSE)(keys=_keys(kind)[1:], args=[max(1, round(seconds * 1000))])
