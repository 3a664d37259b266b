"""What every channel's sender shares: the error it raises and the connection shape the
platforms' HttpClient expects (so each call is recorded with secrets redacted)."""
from __future__ import annotations

from dataclasses import dataclass


class SendError(Exception):
    """The message did not go out; the text is the service's own (secrets redacted).

    ``retry``: trying again later may help (the service is down, busy, or staff must fix the
    channel's settings): the delivery retries until the message is NOTIFY_GIVE_UP_AFTER hours
    old; False when this recipient cannot be reached this way (a bad number, a bot blocked by
    the user) or the message cannot be taken at all: failed at once. ``retry_after``: seconds
    the service asked us to wait."""

    def __init__(self, message: str, *, retry: bool = True, retry_after: float | None = None):
        super().__init__(message)
        self.retry, self.retry_after = retry, retry_after


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
