"""ЮKassa's wire format (https://yookassa.ru/developers/api): HTTP Basic shopId:secretKey, JSON.

    POST /payments          create; ``Idempotence-Key`` header (the same key and body answer the
                            same payment, for 24 hours at the service)
    GET  /payments/{id}     read one back (404: no such payment for this shop)
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from ...platforms.http import HttpClient, PlatformError


@dataclass
class _Connection:  # what HttpClient reads
    url: str
    timeout: float
    login: str
    password: str


def _describe(response) -> str:
    """The service's own error text (``description``, ``code``, ``parameter``)."""
    try:
        body = response.json()
        parts = [body.get("description"), body.get("code") and f"({body['code']})",
                 body.get("parameter") and f"parameter {body['parameter']}"]
        text = " ".join(p for p in parts if p)
        return text or response.text.strip()[:500]
    except ValueError:
        return response.text.strip()[:500]


def money(amount: Decimal) -> dict:
    return {"value": f"{amount.quantize(Decimal('0.01'))}", "currency": "RUB"}


class YooKassaClient:
    def __init__(self, api_url: str, shop_id: str, secret: str, timeout: float):
        self.http = HttpClient(_Connection(api_url, timeout, shop_id, secret))

    def create_payment(self, idempotence_key: str, body: dict) -> dict:
        r = self.http.request("POST", "/payments", json=body, headers={"Idempotence-Key": idempotence_key},
                              describe=_describe)
        return self._json(r)

    def get_payment(self, payment_id: str) -> dict | None:
        r = self.http.request("GET", f"/payments/{payment_id}", expect=(404,), describe=_describe)
        return None if r.status_code == 404 else self._json(r)

    @staticmethod
    def _json(response) -> dict:
        try:
            body = response.json()
        except ValueError:
            raise PlatformError(f"not JSON: {response.text[:200]}") from None
        if not isinstance(body, dict):
            raise PlatformError("not a JSON object")
        return body


def payment_body(*, amount: Decimal, return_url: str, description: str, metadata: dict,
                 customer: dict | None, vat_code: int | None, payment_subject: str, payment_mode: str) -> dict:
    """The create request: one-stage (capture true), redirect confirmation; with the 54-ФЗ receipt
    (one item: the payment itself) when ``vat_code`` is given and we have a contact."""
    body = {"amount": money(amount), "capture": True,
            "confirmation": {"type": "redirect", "return_url": return_url},
            "description": description, "metadata": metadata}
    if vat_code is not None and customer:
        body["receipt"] = {"customer": customer, "items": [{
            "description": description, "quantity": "1.00", "amount": money(amount), "vat_code": vat_code,
            "payment_subject": payment_subject, "payment_mode": payment_mode}]}
    return body
