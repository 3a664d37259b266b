"""The webhook wire protocol.

``POST <url>`` with a JSON document describing one account, ``Content-Type:
application/json``, HTTP Basic auth when the connection has a login. Any 2xx answer means
the receiver has stored the document; anything else is an error, and its body is the error
text shown to staff. The document is the whole state of the account, so sending it again is
harmless (a receiver keeps the latest document per login):

    {"login": "...", "present": true, "status": "active|blocked|inactive|disabled",
     "block_reasons": [...], "tariff": {...}, "multi_tariffs": [...], "services": [...],
     "contract": {"number": "...", "balance": "12.34", "credit_limit": "0.00"},
     "address": {...}, "extra": {...}}

An account that has left the platform is sent as ``{"login": "...", "present": false}``.
"""
from __future__ import annotations

from ..http import HttpClient


class WebhookClient(HttpClient):
    def push(self, document: dict) -> None:
        self.request("POST", json=document)
