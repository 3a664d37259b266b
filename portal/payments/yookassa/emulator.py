"""A local ЮKassa (API v3) for tests and ``make run``: the two calls the portal makes, with
HTTP Basic shopId:secretKey and Idempotence-Key, and a payment page of its own.

    emu = YooKassaEmulator(shop_id="123456", secret="test_secret").start()
    emu.webhook_url = "http://127.0.0.1:5000/pay/yookassa/notify"   # the shop's setting at ЮKassa
    emu.api_url                       # what the shop connection points at
    emu.payments[id]                  # the service's payment objects
    emu.notify = False                # the page posts no notification (a test sends them: emu.send(id))
    emu.pending_seconds = 3           # "pending, then success" waits this long

The payment page (``confirmation_url``) has three buttons: «Оплатить» (succeeded), «Отменить»
(canceled), «Ожидание, затем успех» (stays pending ``pending_seconds``, then succeeded). Each
redirects to the payment's ``return_url`` and posts the notification to ``webhook_url`` (from
a thread, as the service does: a notification may come before or after the return).

Idempotence-Key as ЮKassa: required on POST; the same key with the same body answers the first
payment again; with another body HTTP 400 ``invalid_request``.

Standalone: ``python -m portal.payments.yookassa.emulator --port 8097 --webhook URL``.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import html
import json
import threading
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from urllib.parse import parse_qs, urlsplit

import requests

from ...platforms.emulation import Answer, EmulatedServer


def _error(status: int, code: str, description: str, parameter: str | None = None) -> Answer:
    body = {"type": "error", "id": str(uuid.uuid4()), "code": code, "description": description}
    if parameter:
        body["parameter"] = parameter
    return Answer(status, body)


class YooKassaEmulator(EmulatedServer):
    thread_name = "yookassa-emulator"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, shop_id: str = "123456",
                 secret: str = "test_secret_key", webhook_url: str | None = None):
        super().__init__(host, port)
        self.shop_id, self.secret, self.webhook_url = shop_id, secret, webhook_url
        self.payments: dict[str, dict] = {}
        self.keys: dict[str, tuple[str, str]] = {}   # Idempotence-Key -> (body digest, payment id)
        self.notify = True
        self.pending_seconds = 3.0
        self.sent: list[dict] = []                   # notifications posted: id, event, HTTP status
        self.receipts: dict[str, dict | None] = {}   # the receipt data each payment came with

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/v3"

    # -- the API ------------------------------------------------------------------------------------

    def handle(self, method: str, path: str, headers, body: bytes) -> Answer:
        parts = urlsplit(path)
        if parts.path.startswith("/pay/"):
            return self._page(method, parts.path, body)
        if not parts.path.startswith("/api/v3/"):
            return _error(404, "not_found", "no such resource")
        expected = "Basic " + base64.b64encode(f"{self.shop_id}:{self.secret}".encode()).decode()
        if headers.get("Authorization") != expected:
            return _error(401, "invalid_credentials", "Login or password is incorrect")
        failure = self.take_failure(method=method)
        if failure:
            return _error(failure.status, "internal_server_error", failure.message)
        rest = parts.path[len("/api/v3"):]
        if method == "POST" and rest == "/payments":
            return self._create(headers.get("Idempotence-Key"), body)
        if method == "GET" and rest.startswith("/payments/"):
            with self._lock:
                payment = self.payments.get(rest[len("/payments/"):])
            if payment is None:
                return _error(404, "not_found", "Payment not found")
            return Answer(200, payment)
        return _error(405, "invalid_request", "method not supported")

    def _create(self, key: str | None, body: bytes) -> Answer:
        if not key or len(key) > 64:
            return _error(400, "invalid_request", "Idempotence-Key header is missing or too long",
                          "Idempotence-Key")
        digest = hashlib.sha256(body).hexdigest()
        with self._lock:
            if key in self.keys:
                first_digest, payment_id = self.keys[key]
                if first_digest != digest:
                    return _error(400, "invalid_request", "Idempotence key duplicated: the request differs "
                                  "from the first one", "Idempotence-Key")
                return Answer(200, self.payments[payment_id])
        try:
            doc = json.loads(body)
            value = Decimal(doc["amount"]["value"])
            if doc["amount"].get("currency") != "RUB" or value <= 0 or value != value.quantize(Decimal("0.01")):
                raise InvalidOperation
            return_url = doc["confirmation"]["return_url"]
            if doc["confirmation"].get("type") != "redirect":
                raise KeyError
        except (ValueError, KeyError, TypeError, InvalidOperation):
            return _error(400, "invalid_request", "amount {value, currency RUB} and confirmation "
                          "{type redirect, return_url} are required", "amount")
        receipt = doc.get("receipt")
        if receipt is not None:
            customer = receipt.get("customer") or {}
            items = receipt.get("items") or []
            if not (customer.get("email") or customer.get("phone")) or not items or \
                    sum(Decimal(i["amount"]["value"]) * Decimal(i["quantity"]) for i in items) != value:
                return _error(400, "invalid_request", "receipt: customer email or phone, and items summing "
                              "to the amount, are required", "receipt")
        payment_id = f"{uuid.uuid4().hex[:8]}-000f-5000-8000-{uuid.uuid4().hex[:12]}"
        payment = {
            "id": payment_id, "status": "pending", "paid": False,
            "amount": {"value": f"{value}", "currency": "RUB"},
            "confirmation": {"type": "redirect", "return_url": return_url,
                             "confirmation_url": f"{self.base_url}/pay/{payment_id}"},
            "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "description": doc.get("description", ""), "metadata": doc.get("metadata") or {},
            "recipient": {"account_id": self.shop_id, "gateway_id": "100700"},
            "refundable": False, "test": True,
        }
        if receipt is not None:
            payment["receipt_registration"] = "pending"
        with self._lock:
            self.payments[payment_id] = payment
            self.keys[key] = (digest, payment_id)
            self.receipts[payment_id] = receipt
        return Answer(200, payment)

    # -- the payment page ---------------------------------------------------------------------------

    def _page(self, method: str, path: str, body: bytes) -> Answer:
        payment_id = path[len("/pay/"):]
        with self._lock:
            payment = self.payments.get(payment_id)
        if payment is None:
            return Answer(404, "Платёж не найден", "text/plain; charset=utf-8")
        if method == "GET":
            return Answer(200, self._page_html(payment), "text/html; charset=utf-8")
        action = (parse_qs(body.decode()).get("action") or [""])[0]
        if payment["status"] == "pending" and action in ("pay", "cancel", "wait"):
            if action == "pay":
                self.finish(payment_id, "succeeded")
            elif action == "cancel":
                self.finish(payment_id, "canceled")
            else:
                threading.Timer(self.pending_seconds, self.finish, (payment_id, "succeeded")).start()
        return Answer(303, b"", "text/plain", {"Location": payment["confirmation"]["return_url"]})

    @staticmethod
    def _page_html(payment: dict) -> str:
        e = html.escape
        done = payment["status"] != "pending"
        buttons = "" if done else (
            '<button name="action" value="pay" id="pay">Оплатить</button> '
            '<button name="action" value="cancel" id="cancel">Отменить</button> '
            '<button name="action" value="wait" id="wait">Ожидание, затем успех</button>')
        return (f'<!doctype html><html lang="ru"><head><meta charset="utf-8"><title>ЮKassa (эмулятор)</title>'
                f'<style>body{{font-family:sans-serif;max-width:32rem;margin:3rem auto}}button{{font-size:1rem;'
                f'margin:.3rem;padding:.5rem 1rem}}</style></head><body><h1>ЮKassa · тестовая оплата</h1>'
                f'<p>{e(payment["description"])}</p><p><b>{e(payment["amount"]["value"])} ₽</b></p>'
                f'<p>Статус: <span id="status">{e(payment["status"])}</span></p>'
                f'<form method="post">{buttons}</form></body></html>')

    def finish(self, payment_id: str, status: str, reason: str = "expired_on_confirmation",
               party: str = "yoo_money") -> None:
        """The payer paid or canceled: the payment's new status, and its notification. A payer
        cannot cancel a redirect payment on the real page: it is cancelled when they leave it
        unconfirmed (``expired_on_confirmation``, by ЮKassa) or when a bank declines it (the
        ``reason`` and ``party`` of "Неуспешные платежи"), so «Отменить» gives the former."""
        with self._lock:
            payment = self.payments[payment_id]
            if payment["status"] != "pending":
                return
            payment["status"] = status
            if status == "succeeded":
                payment.update(paid=True, captured_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                               income_amount=dict(payment["amount"]))
                if "receipt_registration" in payment:
                    payment["receipt_registration"] = "succeeded"
            else:
                payment["cancellation_details"] = {"party": party, "reason": reason}
        if self.notify:
            threading.Thread(target=self.send, args=(payment_id,), daemon=True).start()

    def send(self, payment_id: str, event: str | None = None, obj: dict | None = None) -> int | None:
        """Post the notification of a payment (or any ``obj``: a test forges one) to webhook_url."""
        with self._lock:
            payment = dict(obj if obj is not None else self.payments[payment_id])
        event = event or f"payment.{payment['status']}"
        status = None
        if self.webhook_url:
            try:
                status = requests.post(self.webhook_url, json={"type": "notification", "event": event,
                                                               "object": payment}, timeout=30).status_code
            except requests.RequestException:
                status = None
        with self._lock:
            self.sent.append({"id": payment.get("id"), "event": event, "status": status})
        return status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8097)
    parser.add_argument("--shop-id", default="123456")
    parser.add_argument("--secret", default="test_secret_key")
    parser.add_argument("--webhook", help="the portal's /pay/yookassa/notify")
    args = parser.parse_args()
    emu = YooKassaEmulator(args.host, args.port, args.shop_id, args.secret, args.webhook).start()
    print(f"ЮKassa emulator: API {emu.api_url} (Ctrl+C to stop)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        emu.stop()


if __name__ == "__main__":
    main()
