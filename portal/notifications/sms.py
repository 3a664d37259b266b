"""The SMS gateway adapter: an SMS.ru-style HTTP API (https://sms.ru/api/send).

``POST <api_url>/sms/send`` with form fields ``api_id`` (the secret), ``to`` (digits, 7XXXXXXXXXX),
``msg``, ``json=1`` and optionally ``from`` (an approved sender name). The gateway answers HTTP
200 whatever happened; the outcome is in the JSON::

    {"status": "OK", "status_code": 100,
     "sms": {"79255070602": {"status": "OK", "status_code": 100, "sms_id": "000000-10000000"}},
     "balance": 4122.56}
    {"status": "ERROR", "status_code": 200, "status_text": "Неправильный api_id"}

A request-level error (``status`` ERROR) is about our account or the gateway (wrong api_id, no
money, sender not approved, service unavailable): retried, staff see it. A per-number error
(``sms.<number>.status`` ERROR) fails the message at once only when it is the recipient's or
the message's own (``FINAL_NUMBER_CODES``: a wrong number or no route to it, the stop list, no
text, too long): SMS.ru also reports the account's and its own troubles per number (201 no
money, 204 sender not approved, 206 the daily limit, 220 unavailable, 230-233 this number's
limits for now, 500 its error), and those are retried like the request-level ones (until
NOTIFY_GIVE_UP_AFTER, ``notifications.delivery``).
"""
from __future__ import annotations

import re

import requests

from ..platforms.http import HttpClient, PlatformError
from .channels import Channel
from .senders import HttpTarget, MaybeSent, SendError, Sent, request_fault

# per-number codes no later attempt can help: 202 a wrong number (or no route), 203 no text,
# 205 too long, 207 no route to this number, 209 the number is on the stop list
FINAL_NUMBER_CODES = {202, 203, 205, 207, 209}


def normalize_phone(phone: str | None) -> str | None:
    """Digits in the international form SMS.ru wants (8XXXXXXXXXX -> 7XXXXXXXXXX), or None."""
    digits = re.sub(r"\D", "", phone or "")
    if len(digits) == 11 and digits[0] == "8":
        digits = "7" + digits[1:]
    elif len(digits) == 10 and digits[0] == "9":
        digits = "7" + digits
    return digits if 10 <= len(digits) <= 15 else None


class SmsClient(HttpClient):
    def __init__(self, channel: Channel):
        super().__init__(HttpTarget(channel.get("api_url"), channel.timeout, channel.secret))
        self.channel = channel

    def send(self, to: str, text: str) -> Sent:
        form = {"api_id": self.channel.secret or "", "to": to, "msg": text, "json": "1"}
        if self.channel.get("sender"):
            form["from"] = self.channel.get("sender")
        try:
            response = self.request("POST", "/sms/send", data=form, fault=request_fault)
        except PlatformError as e:  # no answer after the request went out: it may have been taken
            raise SendError(str(e), maybe_sent=isinstance(e, MaybeSent)) from None
        try:
            answer = response.json()
        except (ValueError, requests.RequestException):
            raise SendError(self.redact(f"not JSON: {response.text[:300]}")) from None
        if answer.get("status") != "OK":
            raise SendError(self.redact(f"{answer.get('status_code')}: {answer.get('status_text', '')}"))
        one = (answer.get("sms") or {}).get(to) or {}
        if one.get("status") != "OK":
            code = one.get("status_code")
            raise SendError(self.redact(f"{code}: {one.get('status_text', '')}"),
                            retry=_int(code) not in FINAL_NUMBER_CODES)
        return Sent(str(one.get("sms_id")) if one.get("sms_id") is not None else None)


def _int(code) -> int | None:
    try:
        return int(code)
    except (TypeError, ValueError):
        return None
