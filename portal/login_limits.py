"""Login rate limiting, shared by the staff login and (later) the cabinet login.

Failed attempts are counted in Redis per login name and per client address, each in a
fixed window; past the limit, further attempts are refused with how long to wait, even
with the right password. A success clears the login's counter. If Redis cannot be
reached, logins are not blocked (the password check still applies)."""
from __future__ import annotations

import redis

from .queue import get_redis

MAX_FAILURES = 5
WINDOW_SECONDS = 15 * 60


def _keys(scope: str, login: str, address: str) -> list[str]:
    return [f"portal:login-fail:{scope}:login:{login.lower()}", f"portal:login-fail:{scope}:addr:{address}"]


def wait_seconds(scope: str, login: str, address: str) -> int:
    """Seconds until the next attempt is allowed; 0 when it is allowed now."""
    try:
        conn = get_redis()
        waits = [conn.ttl(k) for k in _keys(scope, login, address) if int(conn.get(k) or 0) >= MAX_FAILURES]
    except redis.RedisError:
        return 0
    return max([w for w in waits if w > 0], default=0)


def record_failure(scope: str, login: str, address: str) -> None:
    try:
        pipe = get_redis().pipeline()
        for k in _keys(scope, login, address):
            pipe.set(k, 0, ex=WINDOW_SECONDS, nx=True)  # the window starts at the first failure
            pipe.incr(k)
        pipe.execute()
    except redis.RedisError:
        pass


def record_success(scope: str, login: str, address: str) -> None:
    try:
        get_redis().delete(_keys(scope, login, address)[0])
    except redis.RedisError:
        pass
