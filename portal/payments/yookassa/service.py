"""What the cabinet, the webhook and staff ask of ЮKassa, with the database's part done by
billing/online_payments.py. No transaction stays open during a call to the service: ours is
committed first, and the answer is applied in a new one.

Creating a payment is the one place a web request calls an outside service over the network
(DESIGN.md routes platform calls through jobs): the subscriber must be redirected to the
service's page at once. It is bounded by the shop's timeout (10 s by default), and when the
service fails the subscriber reads so and nothing is credited.
"""
from __future__ import annotations

from collections.abc import Callable

from ...billing import online_payments as op
from ...billing.crypto import decrypt
from ...billing.errors import BillingError
from ...extensions import db
from ...models import Contract, OnlinePayment, OnlineShop, utcnow
from ...platforms.http import PlatformError, audit_calls, recording
from .client import YooKassaClient, payment_body


class ServiceUnavailable(Exception):
    """The service could not be reached or refused: the message is its own text (no secret)."""


def client_for(shop: OnlineShop) -> YooKassaClient:
    return YooKassaClient(shop.api_url, op.shop_id_of(shop), decrypt(shop.secret_enc), shop.timeout)


def create(contract: Contract, amount, *, actor: str, return_url: Callable[[int], str]) -> OnlinePayment:
    """Start a payment and create it at the service; the answer has ``confirmation_url`` to send
    the payer to. BillingError for a wrong amount; ServiceUnavailable when the service failed
    (the payment is kept as failed, nothing credited)."""
    payment = op.start(contract, amount, actor=actor)
    shop = payment.shop
    use_receipt = shop.receipt
    body = payment_body(amount=payment.amount, return_url=return_url(payment.id), description=op.description(payment),
                        metadata=op.metadata(payment), customer=op.receipt_contact(contract) if use_receipt else None,
                        vat_code=shop.vat_code if use_receipt else None, payment_subject=shop.payment_subject,
                        payment_mode=shop.payment_mode)
    if use_receipt and "receipt" not in body:
        db.session.rollback()
        raise BillingError({"receipt": "no e-mail or phone for the receipt: ask the operator to add one"})
    client, key, payment_pk = client_for(shop), payment.idempotence_key, payment.id
    db.session.commit()  # the key is ours before the service sees it
    with recording() as calls:
        try:
            remote, error = client.create_payment(key, body), None
        except PlatformError as e:
            remote, error = None, str(e)
    payment = db.session.get(OnlinePayment, payment_pk)
    if remote is None:
        op.failed(payment, error)
    else:
        op.created(payment, remote)
    audit_calls(calls, actor, "contract", contract.id)
    db.session.commit()
    if payment.state == "failed":
        raise ServiceUnavailable(payment.error)
    return payment


def confirm(payment: OnlinePayment, *, actor: str) -> bool:
    """Read the payment back from the service and take what it says (billing credits it once
    if it succeeded). True when this call credited it. ServiceUnavailable when it cannot be read."""
    if payment.payment_id is None:
        return False
    client, payment_pk, remote_id = client_for(payment.shop), payment.id, payment.payment_id
    db.session.commit()
    with recording() as calls:
        try:
            remote, error = client.get_payment(remote_id), None
        except PlatformError as e:
            remote, error = None, str(e)
    payment = db.session.get(OnlinePayment, payment_pk)
    audit_calls(calls, actor, "contract", payment.contract_id)
    if error is not None:
        db.session.commit()
        raise ServiceUnavailable(error)
    if remote is None:
        payment.error, payment.checked_at = "the service does not know this payment", utcnow()
        db.session.commit()
        return False
    credited = op.apply_remote(payment, remote)
    db.session.commit()
    return credited


def on_notification(document) -> str:
    """A notification as posted to the webhook. Its body is not trusted: only the payment id is
    taken from it, and the payment is read back. Answers what happened: "bad" (not a
    notification), "unknown" (not a payment of ours), "credited" or "checked"."""
    if not isinstance(document, dict) or document.get("type") != "notification":
        return "bad"
    obj = document.get("object")
    payment_id = obj.get("id") if isinstance(obj, dict) else None
    if not isinstance(payment_id, str):
        return "bad"
    payment = op.find(payment_id)
    if payment is None:
        return "unknown"
    return "credited" if confirm(payment, actor=op.ACTOR) else "checked"


RECHECK_ACTOR = "system"


def recheck_pending(*, now=None, limit: int = 100) -> dict:
    """The periodic re-check (jobs/payments.py): read back each pending payment that is due
    (billing.online_payments.due_for_recheck), one transaction each, so a credit found is
    credited once (the ledger key, whatever a notification does meanwhile) and a payment past the
    service's expiry that is still pending is marked expired. When the service cannot be reached
    the run stops at once: the rest wait for the next run (nothing is marked, nothing lost)."""
    now = now or utcnow()
    counts = {"checked": 0, "credited": 0, "canceled": 0, "expired": 0, "unavailable": 0}
    for pk in op.due_for_recheck(now, limit):
        payment = db.session.get(OnlinePayment, pk)
        if payment is None or payment.state not in op.RECHECKED:
            continue  # a notification settled it meanwhile
        try:
            credited = confirm(payment, actor=RECHECK_ACTOR)
        except ServiceUnavailable:
            db.session.rollback()
            counts["unavailable"] += 1
            break
        counts["checked"] += 1
        payment = db.session.get(OnlinePayment, pk)
        if credited:
            counts["credited"] += 1
        elif payment.state == "canceled":
            counts["canceled"] += 1
        elif op.expire(payment, now):
            counts["expired"] += 1
        db.session.commit()
    return counts
