"""Refused credentials, counted per source address, for platform callbacks.

After ``CALLBACK_MAX_FAILURES`` wrong credentials from one address within
``CALLBACK_FAILURE_WINDOW`` seconds (the window starts at the first failure), that address is
answered 429 with how long to wait, without its password being checked, so guessing stops.
Only that address: the right credentials from another one still work, so a stranger elsewhere
cannot lock the platform out (one that shares the platform's address can: NAT, a proxy not
named in TRUSTED_PROXIES).

The counters live in Redis (shared by every web process). Each failure's count comes back
from Redis, and a process that sees it reach the limit remembers the address as refused until
the window ends: so a call is answered from memory and Redis is asked only about failures, not
on every call (the upsale and provider callbacks are hot paths). An address that spreads its
guesses over several processes gets a few more guesses checked than the limit: each process
learns of the limit at its first failure past it, so at most one more per process and per
request it runs at once (gunicorn.conf.py's sync workers run one each).

While Redis cannot be reached, a small counter in this process takes over (a limit per process
rather than none), and Redis is not asked again for a few seconds, so that a call does not wait
on a dead server each time.
"""
from __future__ import annotations

import math
import threading
import time

import redis
from flask import current_app

from ..queue import get_redis

REDIS_RETRY_AFTER = 5.0  # seconds without asking Redis after it failed
LOCAL_MAX_KEYS = 10_000  # the fallback's memory bound


class _LocalCounts:
    """Fixed-window counters in this process: key -> [count, expires at (monotonic)]."""

    def __init__(self):
        self._lock = threading.Lock()
        self._counts: dict[str, list] = {}

    def wait(self, key: str, limit: int) -> int:
        with self._lock:
            entry = self._counts.get(key)
            left = entry[1] - time.monotonic() if entry else 0
            return max(1, round(left)) if left > 0 and entry[0] >= limit else 0

    def fail(self, key: str, window: int) -> None:
        now = time.monotonic()
        with self._lock:
            entry = self._counts.get(key)
            if entry is None or entry[1] <= now:
                if len(self._counts) >= LOCAL_MAX_KEYS:
                    self._counts = {k: v for k, v in self._counts.items() if v[1] > now}
                    if len(self._counts) >= LOCAL_MAX_KEYS:  # still full: forget the oldest window
                        del self._counts[min(self._counts, key=lambda k: self._counts[k][1])]
                entry = self._counts[key] = [0, now + window]
            entry[0] += 1


class FailureLimit:
    """Failures of one kind (``scope``) per source address."""

    def __init__(self, scope: str, limit_setting: str = "CALLBACK_MAX_FAILURES"):
        self.scope, self.limit_setting = scope, limit_setting
        self._local = _LocalCounts()
        self._refused: dict[str, float] = {}  # key -> end of its window (monotonic), learnt from Redis
        self._refused_lock = threading.Lock()  # (gthread workers share it between threads)
        self._redis_down_until = 0.0

    def _key(self, source: str) -> str:
        return f"portal:callback-fail:{self.scope}:{source}"

    def _redis(self):
        return None if time.monotonic() < self._redis_down_until else get_redis()

    def _down(self) -> None:
        self._redis_down_until = time.monotonic() + REDIS_RETRY_AFTER

    def wait(self, source: str) -> int:
        """Seconds ``source`` must wait before its credentials are checked again; 0: go on.
        From this process's memory (see the module's docstring)."""
        key = self._key(source)
        until = self._refused.get(key)
        if until is not None:
            left = until - time.monotonic()
            if left > 0:
                return max(1, math.ceil(left))
            with self._refused_lock:
                self._refused.pop(key, None)
        return self._local.wait(key, current_app.config[self.limit_setting])

    def fail(self, source: str) -> None:
        """Count a refused credential from ``source``."""
        window, key = current_app.config["CALLBACK_FAILURE_WINDOW"], self._key(source)
        conn = self._redis()
        if conn is not None:
            try:
                pipe = conn.pipeline()
                pipe.set(key, 0, ex=window, nx=True)  # the window starts at the first failure
                pipe.incr(key)
                pipe.ttl(key)
                _, count, ttl = pipe.execute()
            except redis.RedisError:
                self._down()
            else:
                if count >= current_app.config[self.limit_setting]:
                    self._remember(key, ttl if ttl > 0 else window)
                return
        self._local.fail(key, window)

    def _remember(self, key: str, seconds: float) -> None:
        now = time.monotonic()
        with self._refused_lock:
            if len(self._refused) >= LOCAL_MAX_KEYS:  # bounded: the windows that ended go first
                self._refused = {k: v for k, v in self._refused.items() if v > now}
                if len(self._refused) >= LOCAL_MAX_KEYS:
                    self._refused.pop(min(self._refused, key=self._refused.__getitem__))
            self._refused[key] = now + seconds
