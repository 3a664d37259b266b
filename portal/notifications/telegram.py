"""The Telegram Bot API adapter: ``sendMessage`` and ``getUpdates`` (the cabinet's linking).

``POST <api_url>/bot<token>/<method>`` with a JSON body; every answer is ``{"ok": true,
"result": ...}`` or ``{"ok": false, "error_code": N, "description": "..."}`` with the HTTP
status N, and ``"parameters": {"retry_after": S}`` on 429. The token is part of the URL: the
recorded call's URL and every error are redacted (HttpClient). 403 (the user blocked the bot or
deactivated) and 400 "chat not found" are the recipient's: not retried; 429 waits as told.
"""
from __future__ import annotations

import requests

from ..platforms.http import HttpClient, PlatformError
from .channels import Channel
from .senders import HttpTarget, SendError, Sent


class TelegramClient(HttpClient):
    def __init__(self, channel: Channel):
        super().__init__(HttpTarget(f"{channel.get('api_url')}/bot{channel.secret or ''}", channel.timeout,
                                    channel.secret))

    def call(self, method: str, payload: dict, timeout: float | None = None):
        try:
            response = self.request("POST", f"/{method}", json=payload, expect=(400, 401, 403, 404, 409, 429),
                                    timeout=timeout)
        except PlatformError as e:
            raise SendError(str(e)) from None
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
        result = self.call("sendMessage", {"chat_id": int(chat_id), "text": text, "parse_mode": "HTML"})
        return Sent(str((result or {}).get("message_id")))

    def updates(self, offset: int | None) -> list[dict]:
        payload = {"timeout": 0, "allowed_updates": ["message"]}
        if offset is not None:
            payload["offset"] = offset
        return self.call("getUpdates", payload) or []
