"""The Telegram Bot API adapter: ``sendMessage`` and ``getUpdates`` (the cabinet's linking).

``POST <api_url>/bot<token>/<method>`` with a JSON body; every answer is ``{"ok": true,
"result": ...}`` or ``{"ok": false, "error_code": N, "description": "..."}`` with the HTTP
status N, and ``"parameters": {"retry_after": S}`` on 429. 403 (the user blocked the bot or
deactivated) and 400 ("chat not found", a message Telegram cannot take) are not retried; 401 and
404 (a wrong token: the channel's), 5xx and network errors are; 429 waits as told.

The token is part of every URL, and requests puts the URL into its exceptions and urllib3 into
its log lines: the token (as stored and as it appears percent-encoded in a URL) is hidden in
every error text, in the recorded call's URL (HttpClient's audit record) and, by a filter on
the HTTP libraries' loggers, in their log lines.
"""
from __future__ import annotations

import logging

import requests
from requests.utils import requote_uri

from ..platforms.http import HttpClient, PlatformError
from .channels import Channel
from .senders import HttpTarget, MaybeSent, SendError, Sent, request_fault

# loggers that write request URLs (urllib3's "GET /bot<token>/getMe" lines, retries, requests)
HTTP_LOGGERS = ("urllib3.connectionpool", "urllib3.util.retry", "urllib3.connection", "urllib3.poolmanager",
                "requests")
_tokens: set[str] = set()  # every token a client was made with in this process, to hide in logs


def scrub(text: str) -> str:
    """``text`` with every known bot token hidden (as stored and percent-encoded)."""
    for token in _tokens:
        text = text.replace(token, "***").replace(requote_uri(token), "***")
    return text


class _HideTokens(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if _tokens:
            message = record.getMessage()
            clean = scrub(message)
            if clean != message:
                record.msg, record.args = clean, ()
        return True


_filter = _HideTokens()
for _name in HTTP_LOGGERS:
    if _filter not in logging.getLogger(_name).filters:
        logging.getLogger(_name).addFilter(_filter)


class TelegramClient(HttpClient):
    def __init__(self, channel: Channel):
        token = channel.secret or ""
        super().__init__(HttpTarget(f"{channel.get('api_url')}/bot{token}", channel.timeout, token or None))
        if token:
            _tokens.add(token)
            self.add_secret(requote_uri(token))

    def redact(self, text: str) -> str:
        return scrub(super().redact(text))

    def call(self, method: str, payload: dict, timeout: float | None = None):
        record: dict = {}
        try:
            response = self.request("POST", f"/{method}", json=payload, expect=(400, 401, 403, 404, 409, 429),
                                    timeout=timeout, record=record, fault=request_fault)
        except PlatformError as e:  # no answer after the request went out: it may have been taken
            raise SendError(self.redact(str(e)), maybe_sent=isinstance(e, MaybeSent)) from None
        finally:  # the audit record's URL: /bot***/sendMessage
            if "url" in record:
                record["url"] = self.redact(record["url"])
        try:
            answer = response.json()
        except (ValueError, requests.RequestException):
            raise SendError(self.redact(f"HTTP {response.status_code}: not JSON")) from None
        if answer.get("ok"):
            return answer.get("result")
        code = answer.get("error_code", response.status_code)
        text = self.redact(f"{code}: {answer.get('description', '')}")
        if code == 429:
            retry_after = float((answer.get("parameters") or {}).get("retry_after") or 1)
            raise SendError(text, retry_after=retry_after)
        raise SendError(text, retry=code not in (400, 403))

    def send(self, chat_id: str, text: str) -> Sent:
        try:
            chat = int(chat_id)
        except (TypeError, ValueError):  # the recipient's address: no later attempt can help
            raise SendError(f"not a Telegram chat id: {str(chat_id)[:40]!r}", retry=False) from None
        result = self.call("sendMessage", {"chat_id": chat, "text": text, "parse_mode": "HTML"})
        return Sent(str((result or {}).get("message_id")))

    def updates(self, offset: int | None) -> list[dict]:
        payload = {"timeout": 0, "allowed_updates": ["message"]}
        if offset is not None:
            payload["offset"] = offset
        return self.call("getUpdates", payload) or []
