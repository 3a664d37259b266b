"""Online payments from the cabinet through a payment service (ЮKassa, API v3): what is paid,
what a read-back of the service's payment must show before we credit, and the one credit.
No HTTP here: portal/payments/yookassa talks to the service, the views call it.

The rules:

* A payment starts as our ``OnlinePayment`` row ("new", a fresh Idempotence-Key) committed
  before the service is called, so a retry of the create sends the same key and the service
  answers the same payment instead of a second one.
* Nothing is credited from what a notification or a browser says. Only ``apply_remote`` credits,
  and only with a payment read back from the service's API with our shop's credentials that
  has our id, status ``succeeded``, ``paid``, the same amount in RUB and our metadata (our
  payment's and contract's ids). Any mismatch is kept as the payment's error and credits nothing.
* The credit is one ledger payment keyed ``yookassa:<service payment id>`` (``ledger_key``):
  the webhook, the return page and a staff re-check may all see ``succeeded``, in any order or
  at once; the ledger's unique key lets one of them post and the others find it.
* The amount is any sum between the shop's minimum and maximum; the cabinet prefills what lifts
  the balance block (blocking.top_up_to_unblock, the one place of that sum).
* A lost notification loses no money: a periodic job (jobs/payments.py) reads back every payment
  left pending (``due_for_recheck``), first RECHECK_AFTER after it was created, then at gaps
  that double (each as long as the payment's age at its last check, at most MAX_GAP), and stops
  once the service's own expiry is behind it (EXPIRES_AFTER): a payment still pending then is
  marked expired (our "canceled", with that reason; a notification that still comes is read
  back and credits as ever).
"""
from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, Decimal

from sqlalchemy import select

from ..extensions import db
from ..models import Contract, OnlinePayment, OnlineShop, Subscriber, utcnow
from ..models.online_payments import VAT_CODES
from . import audit, ledger
from .blocking import top_up_to_unblock
from .crypto import decrypt, encrypt
from .errors import BillingError
from .inputs import parse_amount

KIND = "yookassa"
ACTOR = "platform:yookassa"   # who credits (the read-back, whoever asked for it)
FINAL = ("succeeded", "canceled")
SERVICE_STATES = ("pending", "waiting_for_capture", "succeeded", "canceled")
CANCELED_NOTE = "canceled: "  # + the service's reason code (payments.yookassa.reasons puts it in words)
SHOP_ID_RE = re.compile(r"[0-9A-Za-z_-]{1,64}")
PAYMENT_SUBJECTS = ("service", "payment", "commodity", "another")
PAYMENT_MODES = ("full_prepayment", "advance", "full_payment", "prepayment")
# The periodic re-check of payments no notification settled. A notification comes within
# seconds, so the first read-back waits a few minutes; ЮKassa cancels an unpaid payment itself
# (within an hour for a card; some methods wait longer), and an Idempotence-Key lives 24 hours:
# past a day a pending payment is read once more, then marked expired and left alone.
RECHECKED = ("pending", "waiting_for_capture")
RECHECK_AFTER = timedelta(minutes=3)
MAX_GAP = timedelta(hours=1)
EXPIRES_AFTER = timedelta(hours=24)
GIVE_UP_AFTER = timedelta(days=3)  # the service unreachable all that while: staff re-check it
EXPIRED = "expired: still pending at the service a day after it was created; no longer checked"


def ledger_key(payment_id: str) -> str:
    return f"{KIND}:{payment_id}"


# -- the shop ----------------------------------------------------------------------------------

def shop() -> OnlineShop | None:
    """The shop, if staff set one up (enabled or not)."""
    return db.session.scalar(select(OnlineShop).where(OnlineShop.kind == KIND))


def shop_id_of(s: OnlineShop) -> str:
    """The shop id as ЮKassa knows it (stored encrypted)."""
    return decrypt(s.shop_id_enc)


def shop_values(s: OnlineShop | None) -> dict:
    """The form's values: the shop id (an identifier admins check against ЮKassa's dashboard;
    alone it opens nothing), the secret key never."""
    if s is None:
        return {"api_url": "https://api.yookassa.ru/v3", "shop_id": "", "vat_code": 1, "receipt": True,
                "payment_subject": "service", "payment_mode": "full_prepayment", "min_sum": "10.00",
                "max_sum": "15000.00", "timeout": 10, "enabled": True}
    return {"api_url": s.api_url, "shop_id": shop_id_of(s), "vat_code": s.vat_code, "receipt": s.receipt,
            "payment_subject": s.payment_subject, "payment_mode": s.payment_mode, "min_sum": str(s.min_sum),
            "max_sum": str(s.max_sum), "timeout": s.timeout, "enabled": s.enabled}


def save_shop(data: dict, *, actor: str, demo_emulator: bool = False) -> OnlineShop:
    """Create or change the shop. ``secret``: a new secret key, or empty to keep the stored one
    (required the first time). Every wrong field is named; nothing is written then."""
    errors: dict[str, str] = {}
    url = str(data.get("api_url") or "").strip()
    if not re.fullmatch(r"https?://[^\s]{1,480}", url):
        errors["api_url"] = "an http(s) URL"
    shop_id = str(data.get("shop_id") or "").strip()
    if not SHOP_ID_RE.fullmatch(shop_id):
        errors["shop_id"] = "1-64 latin letters, digits, _ and -"
    secret = str(data.get("secret") or "")
    current = shop()
    if current is None and not secret:
        errors["secret"] = "required"
    elif secret and (len(secret) > 200 or secret != secret.strip()):
        errors["secret"] = "up to 200 characters, no spaces at the ends"
    try:
        vat_code = int(data.get("vat_code"))
        if vat_code not in VAT_CODES:
            raise ValueError
    except (TypeError, ValueError):
        errors["vat_code"] = "one of 1-10"
        vat_code = None
    if data.get("payment_subject") not in PAYMENT_SUBJECTS:
        errors["payment_subject"] = f"one of {', '.join(PAYMENT_SUBJECTS)}"
    if data.get("payment_mode") not in PAYMENT_MODES:
        errors["payment_mode"] = f"one of {', '.join(PAYMENT_MODES)}"
    sums = {}
    for field in ("min_sum", "max_sum"):
        try:
            sums[field] = parse_amount(data.get(field), field)
            if sums[field] <= 0:
                errors[field] = "must be positive"
        except BillingError as e:
            errors.update(e.fields)
    if not errors and sums["max_sum"] < sums["min_sum"]:
        errors["max_sum"] = "must not be below the minimum sum"
    try:
        timeout = int(data.get("timeout"))
        if not 1 <= timeout <= 60:
            raise ValueError
    except (TypeError, ValueError):
        errors["timeout"] = "1-60 seconds"
        timeout = None
    if errors:
        raise BillingError(errors)
    s = current or OnlineShop(kind=KIND)
    before = shop_values(current) if current else None
    shop_id_changed = before is None or before["shop_id"] != shop_id
    if shop_id_changed:
        s.shop_id_enc = encrypt(shop_id)
    s.api_url, s.vat_code, s.receipt = url.rstrip("/"), vat_code, bool(data.get("receipt"))
    s.payment_subject, s.payment_mode = data["payment_subject"], data["payment_mode"]
    s.min_sum, s.max_sum, s.timeout, s.enabled = sums["min_sum"], sums["max_sum"], timeout, bool(data.get("enabled"))
    s.demo_emulator, s.updated_at = demo_emulator, utcnow()
    if secret:
        s.secret_enc = encrypt(secret)
    if current is None:
        db.session.add(s)
    db.session.flush()
    # the audit says whether the shop id and the secret changed, never what they are
    after = {**shop_values(s), "shop_id": "changed" if shop_id_changed else "kept",
             "secret": "changed" if secret else "kept"}
    if before is not None:
        before.pop("shop_id")
    audit.record(actor, "online_shop.save", None, "ЮKassa shop settings", before=before, after=after,
                 object_type="system")
    return s


# -- paying ------------------------------------------------------------------------------------

def suggested_amount(contract: Contract, s: OnlineShop) -> Decimal:
    """What the cabinet's form starts with: what lifts the balance block, within the shop's
    limits (the minimum when nothing is due)."""
    due = top_up_to_unblock(contract)
    amount = due.quantize(Decimal("0.01"), ROUND_CEILING) if due else s.min_sum
    return min(max(amount, s.min_sum), s.max_sum)


def parse_pay_amount(s: OnlineShop, raw) -> Decimal:
    amount = parse_amount(raw, "amount")
    if amount < s.min_sum:
        raise BillingError({"amount": "below the minimum sum for online payment"})
    if amount > s.max_sum:
        raise BillingError({"amount": "above the maximum sum for online payment"})
    return amount


def start(contract: Contract, raw_amount, *, actor: str) -> OnlinePayment:
    """Our record of a payment about to be created at the service (the caller commits it before
    calling the service)."""
    s = shop()
    if s is None or not s.enabled:
        raise BillingError({"shop": "online payment is not available"})
    amount = parse_pay_amount(s, raw_amount)
    payment = OnlinePayment(shop_id=s.id, contract_id=contract.id, amount=amount, state="new",
                            idempotence_key=str(uuid.uuid4()), actor=actor[:100])
    db.session.add(payment)
    db.session.flush()
    return payment


def description(payment: OnlinePayment) -> str:
    """The payment's and the receipt item's text (ЮKassa: at most 128 characters)."""
    return f"Оплата услуг связи, договор № {payment.contract.number}"[:128]


def metadata(payment: OnlinePayment) -> dict:
    """What we send as metadata and expect back unchanged (the service keeps it as strings)."""
    return {"online_payment_id": str(payment.id), "contract_id": str(payment.contract_id)}


def receipt_contact(contract: Contract) -> dict | None:
    """The 54-ФЗ receipt's customer: the subscriber's e-mail, else the first phone as digits."""
    subscriber = db.session.get(Subscriber, contract.subscriber_id)
    if subscriber is None:
        return None
    if subscriber.email:
        return {"email": subscriber.email}
    for phone in subscriber.phones or []:
        digits = re.sub(r"\D", "", str(phone))
        if 10 <= len(digits) <= 15:
            return {"phone": ("7" + digits[1:]) if len(digits) == 11 and digits[0] == "8" else digits}
    return None


def created(payment: OnlinePayment, remote: dict) -> None:
    """The service answered the create: its id, status and where the payer confirms."""
    payment.payment_id = str(remote.get("id") or "")[:64] or None
    status = remote.get("status")
    payment.state = status if status in SERVICE_STATES else "pending"
    payment.confirmation_url = ((remote.get("confirmation") or {}).get("confirmation_url") or "")[:1000] or None
    payment.checked_at = utcnow()
    if payment.confirmation_url and not re.match(r"https?://", payment.confirmation_url):
        payment.confirmation_url = None  # the payer's browser goes there: a web page only
    if payment.payment_id is None or payment.confirmation_url is None:
        payment.state, payment.error = "failed", "the service answered without a payment id or confirmation URL"


def failed(payment: OnlinePayment, error: str) -> None:
    payment.state, payment.error, payment.checked_at = "failed", error[:2000], utcnow()


def find(payment_id: str) -> OnlinePayment | None:
    """Our payment with this service id (None for an id we never created)."""
    if not isinstance(payment_id, str) or not 1 <= len(payment_id) <= 64:
        return None
    return db.session.scalar(select(OnlinePayment).where(OnlinePayment.payment_id == payment_id))


def _mismatch(payment: OnlinePayment, remote: dict) -> str | None:
    """Why the payment read back is not ours as we created it, or None."""
    if remote.get("id") != payment.payment_id:
        return f"the service answered another payment ({str(remote.get('id'))[:64]})"
    amount = remote.get("amount") or {}
    try:
        value = Decimal(str(amount.get("value")))
    except ArithmeticError:
        value = None
    if value != payment.amount or amount.get("currency") != "RUB":
        return (f"amount {str(amount.get('value'))[:20]} {str(amount.get('currency'))[:8]} "
                f"instead of {payment.amount} RUB")
    if (remote.get("metadata") or {}).get("online_payment_id") != str(payment.id) or \
            (remote.get("metadata") or {}).get("contract_id") != str(payment.contract_id):
        return "the metadata is not ours"
    return None


def apply_remote(payment: OnlinePayment, remote: dict) -> bool:
    """Take the state the service's API answered for this payment (read back with our
    credentials: never a notification's body); credit it once if it succeeded. True when this
    call posted the credit."""
    payment.checked_at = utcnow()
    why = _mismatch(payment, remote)
    if why is not None:
        payment.error = why[:2000]
        audit.record(ACTOR, "online_payment.mismatch", payment.contract, f"ЮKassa {payment.payment_id}: {why}")
        return False
    status = remote.get("status")
    if status not in SERVICE_STATES:
        payment.error = f"unknown status {str(status)[:40]}"
        return False
    if payment.state == "succeeded" and status != "succeeded":
        return False  # a credited payment stays succeeded (a refund is another object)
    payment.state = status
    if status == "canceled":
        reason = (remote.get("cancellation_details") or {}).get("reason")
        payment.error = f"{CANCELED_NOTE}{str(reason)[:100]}" if reason else None
    if status != "succeeded" or remote.get("paid") is not True:
        return False
    entry, created_now = ledger.post(payment.contract_id, "payment", payment.amount, actor=ACTOR,
                                     comment=f"ЮKassa {payment.payment_id}",
                                     idempotency_key=ledger_key(payment.payment_id))
    payment.ledger_entry_id, payment.error = entry.id, None
    return created_now


def due_for_recheck(now: datetime, limit: int = 100) -> list[int]:
    """The pending payments (with a service id) a re-check should read back now, oldest first:
    created at least RECHECK_AFTER ago, whose last check is at least as long ago as the
    payment's age was then (RECHECK_AFTER at least, MAX_GAP at most: checks at about 3, 6, 12,
    24, 48 minutes, then hourly), or which have reached EXPIRES_AFTER (the last read, after which
    ``expire`` marks them). One the service could not answer for past GIVE_UP_AFTER is left to
    staff's re-check button."""
    o = OnlinePayment.__table__.c
    rows = db.session.execute(
        select(o.id, o.created_at, o.checked_at)
        .where(o.state.in_(RECHECKED), o.payment_id.is_not(None), o.created_at <= now - RECHECK_AFTER,
               o.created_at > now - GIVE_UP_AFTER)
        .order_by(o.id)).all()
    due = []
    for pid, created, checked in rows:
        gap = min(max(checked - created, RECHECK_AFTER), MAX_GAP) if checked else RECHECK_AFTER
        if now - created >= EXPIRES_AFTER or checked is None or now - checked >= gap:
            due.append(pid)
            if len(due) >= limit:
                break
    return due


def expire(payment: OnlinePayment, now: datetime) -> bool:
    """A payment the service still calls pending past EXPIRES_AFTER: marked expired (state
    "canceled" with that reason; a later notification is still read back and may credit it).
    True when this call marked it."""
    if payment.state not in RECHECKED or now - payment.created_at < EXPIRES_AFTER:
        return False
    payment.state, payment.error = "canceled", EXPIRED
    audit.record("system", "online_payment.expired", payment.contract, f"ЮKassa {payment.payment_id}: {EXPIRED}")
    return True


def recent(limit: int = 100, state: str | None = None, before: int | None = None) -> list[OnlinePayment]:
    """The staff list: newest first."""
    q = select(OnlinePayment).order_by(OnlinePayment.id.desc()).limit(limit)
    if state:
        q = q.where(OnlinePayment.state == state)
    if before:
        q = q.where(OnlinePayment.id < before)
    return list(db.session.scalars(q))
