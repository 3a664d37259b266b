"""What every channel's sender shares: the error it raises and the connection shape the
platforms' HttpClient expects (so each call is recorded with secrets redacted)."""
from __future__ import annotations

from dataclasses import dataclass

import requests
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from ..platforms.http import PlatformError


class SendError(Exception):
    """The message did not go out; the text is the service's own (secrets redacted).

    ``retry``: trying again later may help (the service is down, busy, or staff must fix the
    channel's settings): the delivery retries until the message is NOTIFY_GIVE_UP_AFTER hours
    old; False when this recipient cannot be reached this way (a bad number, a bot blocked by
    the user) or the message cannot be taken at all: failed at once. ``retry_after``: seconds
    the service asked us to wait. ``maybe_sent``: the request reached the service and no answer
    came (a read timeout, the connection dropped after sending, the job stopped mid-call): the
    message may have gone out, so the delivery sends it again at most once (as a killed job's)."""

    def __init__(self, message: str, *, retry: bool = True, retry_after: float | None = None,
                 maybe_sent: bool = False):
        super().__init__(message)
        self.retry, self.retry_after, self.maybe_sent = retry, retry_after, maybe_sent


class MaybeSent(PlatformError):
    """The HTTP request was sent and no answer came (``request_fault``)."""


def after_sending(cause) -> bool:
    """Did this requests error happen after the request went out (a read timeout, the connection
    reset or closed before the answer)? A refused connection, a failed name lookup, a connect
    timeout or a TLS failure mean nothing was sent."""
    if not isinstance(cause, requests.RequestException) or isinstance(cause, (requests.ConnectTimeout,
                                                                               requests.exceptions.SSLError)):
        return False
    if isinstance(cause, (requests.ReadTimeout, requests.exceptions.ChunkedEncodingError)):
        return True
    if isinstance(cause, requests.ConnectionError):
        reason = cause.args[0] if cause.args else None
        reason = getattr(reason, "reason", reason)  # urllib3's MaxRetryError wraps the cause
        return not isinstance(reason, (NewConnectionError, ConnectTimeoutError))
    return False


def request_fault(call: dict, cause) -> PlatformError | None:
    """``HttpClient.request``'s ``fault``: MaybeSent for an error after the request went out."""
    return MaybeSent(call["error"]) if after_sending(cause) else None


@dataclass(frozen=True)
class HttpTarget:
    """What ``platforms.http.HttpClient`` reads from a connection: no HTTP auth, the channel's
    secret listed as ``password`` only so that the client redacts it from errors."""

    url: str
    timeout: int
    password: str | None
    login: str | None = None


@dataclass(frozen=True)
class Sent:
    external_id: str | None = None
