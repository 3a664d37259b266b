"""Outbound HTTP for platform clients: timeouts, credentials, errors, and a record of every
call (method, URL without credentials or query, status, duration, error) that the reconcile
code writes to the audit log once the call is over."""
from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from urllib.parse import urlsplit, urlunsplit

import requests

_calls: ContextVar[list[dict] | None] = ContextVar("platform_calls", default=None)


class PlatformError(Exception):
    """The platform refused or could not be reached; the message is its own error text."""


class Conflict(PlatformError):
    """The platform holds an object billing is not bound to where billing would write (a login
    or a MAC already in use): a person decides; retrying cannot help. The sync state becomes
    ``conflict`` (no retries) until staff resolve it and sync again."""


@contextmanager
def recording() -> Iterator[list[dict]]:
    """Collect the calls made inside the block (the audit log is written afterwards, because
    no database transaction stays open during a network call)."""
    log: list[dict] = []
    token = _calls.set(log)
    try:
        yield log
    finally:
        _calls.reset(token)


def audit_calls(calls: list[dict], actor: str, object_type: str = "system", object_id: int | None = None) -> None:
    """Write the recorded calls to the audit log, one entry each (in the caller's transaction;
    a call dict holds no secret: the client redacts them)."""
    from ..billing import audit

    for call in calls:
        outcome = call.get("status", "no answer") if "error" not in call else f"failed: {call['error'][:200]}"
        audit.record(actor, "platform.call", None, f"{call.get('func') or call['method']} {call['url']} {outcome}",
                     after=call, object_type=object_type, object_id=object_id)


def public_url(url: str) -> str:
    """The URL without user info, query or fragment: safe to log."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class HttpClient:
    """A requests session bound to one platform connection."""

    def __init__(self, connection):
        self.base_url = connection.url.rstrip("/")
        self.timeout = connection.timeout
        self.session = requests.Session()
        self._secrets = [connection.password] if connection.password else []
        if connection.login:
            self.session.auth = (connection.login, connection.password or "")
            # a platform that echoes our request in an error must not put the password in our logs
            self._secrets.append(base64.b64encode(f"{connection.login}:{connection.password or ''}".encode()).decode())

    def request(self, method: str, path: str = "", *, expect: tuple[int, ...] = (), describe=None,
                timeout: float | None = None, record: dict | None = None, fault=None,
                **kwargs) -> requests.Response:
        """Make one call; raise PlatformError on a network error or an HTTP error status. A
        status in ``expect`` (e.g. 404 for "no such profile") is an answer, not an error;
        ``describe(response)`` picks the platform's message out of an error answer.

        For a protocol with its own ways of failing (BILLmanager's): ``timeout`` for this call
        instead of the connection's; ``record``: the caller's dict that becomes this call's
        record (extra fields such as the function called, and the caller may add the error a
        platform states in a 200 answer); ``fault(call, cause) -> PlatformError | None``: the
        platform's own exception for a network error (``cause``: the requests exception) or an
        error status (``cause``: the response), and it may reword ``call["error"]``."""
        url = self.base_url + path
        call = record if record is not None else {}
        call.update(method=method, url=public_url(url))
        cause = None
        started = time.monotonic()
        try:
            response = self.session.request(method, url, timeout=timeout or self.timeout, **kwargs)
        except requests.RequestException as e:
            cause = e
            call["error"] = self._redact(f"{type(e).__name__}: {e}")
        else:
            call["status"] = response.status_code
            if response.status_code >= 400 and response.status_code not in expect:
                cause = response
                text = describe(response) if describe else response.text.strip()[:1000]
                call["error"] = self._redact(f"HTTP {response.status_code}: {text}")
        call["ms"] = round((time.monotonic() - started) * 1000)
        log = _calls.get()
        if log is not None:
            log.append(call)
        if "error" in call:
            raise (fault(call, cause) if fault else None) or PlatformError(call["error"])
        return response

    def add_secret(self, secret: str | None) -> None:
        """One more value never to show in a call's error (e.g. a session id the platform gave)."""
        if secret and secret not in self._secrets:
            self._secrets.append(secret)

    def redact(self, text: str) -> str:
        """``text`` with the connection's secrets hidden."""
        return self._redact(text)

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text
