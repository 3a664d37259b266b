"""Login limits that protect without locking anybody out; staff (scope ``staff``) and cabinet
(scope ``cabinet``) alike.

Failed attempts are counted in a window (``LOGIN_FAILURE_WINDOW``, from the first failure):

* per (login, address): past ``LOGIN_MAX_FAILURES`` that address may not try that login
  again until the window ends (429). A stranger elsewhere cannot trigger it for the real user;
* per address: past ``LOGIN_MAX_ADDRESS_FAILURES`` (any logins) the address waits (429),
  which stops one address from trying many logins;
* per login alone: never a refusal, only a delay before the password is checked that grows
  with the failures (0.25 s doubling past ``LOGIN_MAX_FAILURES``, at most ``LOGIN_DELAY_MAX``),
  so guessing one login from many addresses is slow and the real user still gets in.

The counters live in Redis; while Redis cannot be reached each failure is a row in
``login_failures`` and the same limits count those rows, so an outage opens no gap.
A success clears the (login, address) and the login's counters. Addresses are what
``request.remote_addr`` says: the real client behind a trusted proxy (``portal/proxies.py``).
"""
from __future__ import annotations

import time
from datetime import timedelta

import redis
from flask import current_app
from sqlalchemy import delete, func, select

from .extensions import db
from .models.base import utcnow
from .models.staff import LoginFailure
from .queue import get_redis

PREFIX = "portal:login-fail"
BASE_DELAY = 0.25


def _settings() -> tuple[int, int, int, float]:
    c = current_app.config
    return (c["LOGIN_MAX_FAILURES"], c["LOGIN_MAX_ADDRESS_FAILURES"], c["LOGIN_FAILURE_WINDOW"],
            c["LOGIN_DELAY_MAX"])


def _login(login: str) -> str:
    return (login or "").strip().lower()[:64]


def _keys(scope: str, login: str, address: str) -> dict[str, str]:
    login = _login(login)
    return {"pair": f"{PREFIX}:{scope}:pair:{address}:{login}", "addr": f"{PREFIX}:{scope}:addr:{address}",
            "login": f"{PREFIX}:{scope}:login:{login}"}


def _counts(scope: str, login: str, address: str, window: int) -> dict[str, tuple[int, int]]:
    """kind -> (failures in the window, seconds until the window ends)."""
    keys = _keys(scope, login, address)
    try:
        conn = get_redis()
        pipe = conn.pipeline()
        for key in keys.values():
            pipe.get(key)
            pipe.ttl(key)
        answers = pipe.execute()
        return {kind: (int(answers[2 * i] or 0), max(int(answers[2 * i + 1]), 0))
                for i, kind in enumerate(keys)}
    except redis.RedisError:
        return _db_counts(scope, login, address, window)


def _db_counts(scope: str, login: str, address: str, window: int) -> dict[str, tuple[int, int]]:
    since = utcnow() - timedelta(seconds=window)
    base = select(func.count(), func.min(LoginFailure.at)).where(LoginFailure.scope == scope,
                                                                 LoginFailure.at > since)
    login = _login(login)
    out = {}
    for kind, cond in (("pair", (LoginFailure.login == login) & (LoginFailure.address == address)),
                       ("addr", LoginFailure.address == address), ("login", LoginFailure.login == login)):
        count, first = db.session.execute(base.where(cond)).one()
        left = int((first + timedelta(seconds=window) - utcnow()).total_seconds()) + 1 if first else 0
        out[kind] = (count, max(left, 0))
    return out


def delay_for(failures: int, max_failures: int, max_delay: float) -> float:
    """The wait before checking a password of a login with ``failures`` recent failures."""
    if failures < max_failures:
        return 0.0
    return min(BASE_DELAY * 2 ** (failures - max_failures), max_delay)


def before_attempt(scope: str, login: str, address: str) -> int:
    """Call before checking a password. Returns the seconds to wait (answer 429) when this
    address, or this address for this login, is over its limit; otherwise waits the login's
    growing delay, if any, and returns 0."""
    max_pair, max_addr, window, max_delay = _settings()
    counts = _counts(scope, login, address, window)
    waits = [counts["pair"][1] if counts["pair"][0] >= max_pair else 0,
             counts["addr"][1] if counts["addr"][0] >= max_addr else 0]
    if any(waits):
        return max(max(waits), 1)
    pause = delay_for(counts["login"][0], max_pair, max_delay)
    if pause:
        time.sleep(pause)
    return 0


def record_failure(scope: str, login: str, address: str) -> None:
    """Count a failed attempt (in the database while Redis is down); commits that row."""
    window = _settings()[2]
    try:
        pipe = get_redis().pipeline()
        for key in _keys(scope, login, address).values():
            pipe.set(key, 0, ex=window, nx=True)  # the window starts at the first failure
            pipe.incr(key)
        pipe.execute()
        return
    except redis.RedisError:
        pass
    db.session.rollback()  # (a login attempt writes nothing else)
    db.session.execute(delete(LoginFailure).where(LoginFailure.at < utcnow() - timedelta(seconds=window)))
    db.session.add(LoginFailure(scope=scope, login=_login(login), address=address[:64]))
    db.session.commit()


def record_success(scope: str, login: str, address: str) -> None:
    """The right password: this address's and this login's failures are forgiven (not the
    address's failures on other logins)."""
    keys = _keys(scope, login, address)
    try:
        get_redis().delete(keys["pair"], keys["login"])
    except redis.RedisError:
        pass
    db.session.execute(delete(LoginFailure).where(LoginFailure.scope == scope,
                                                  LoginFailure.login == _login(login)))
    db.session.commit()
