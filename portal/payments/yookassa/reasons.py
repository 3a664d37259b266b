"""Why ЮKassa cancelled a payment, in words for staff and the payer.

The service names the reason in ``cancellation_details.reason`` (its "Неуспешные платежи" page,
yookassa.ru/developers/payments/declined-payments); billing keeps that code as the payment's
note (``canceled: <code>``) and the pages show it through this table. A code the table does not
know yet is shown as it came."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l

from ...billing.online_payments import CANCELED_NOTE

CANCEL_REASONS = {
    "3d_secure_failed": _l("3-D Secure authentication failed: try again, or ask your bank"),
    "call_issuer": _l("declined by the bank that issued the card or wallet: contact it"),
    "canceled_by_merchant": _l("cancelled by the operator"),
    "card_expired": _l("the card has expired"),
    "country_forbidden": _l("cards issued in this country are not accepted"),
    "deal_expired": _l("the deal has expired"),
    "expired_on_capture": _l("the time to capture the payment ran out"),
    "expired_on_confirmation": _l("the payment was not confirmed in time"),
    "fraud_suspected": _l("blocked as suspected fraud"),
    "general_decline": _l("declined without a reason given"),
    "identification_required": _l("the wallet's limits are reached: it needs identification"),
    "insufficient_funds": _l("not enough money on the card or wallet"),
    "internal_timeout": _l("a technical fault at ЮKassa: try again"),
    "invalid_card_number": _l("wrong card number"),
    "invalid_csc": _l("wrong CVV2/CVC2 code"),
    "issuer_unavailable": _l("the card's bank is not answering: try again later"),
    "payment_method_limit_exceeded": _l("the limit of payments by this method is reached"),
    "payment_method_restricted": _l("payments by this method are not allowed"),
    "permission_revoked": _l("the payer has withdrawn the permission to charge"),
    "unsupported_mobile_operator": _l("payments from this mobile operator's numbers are not accepted"),
}


def cancel_reason(note: str | None) -> str | None:
    """The reason of a cancelled payment's ``note`` (its ``error``), in the page's language;
    None when the note is not a cancellation's."""
    if not note or not note.startswith(CANCELED_NOTE):
        return None
    code = note.removeprefix(CANCELED_NOTE)
    return str(CANCEL_REASONS.get(code, code))


def shown_note(note: str | None) -> str:
    """The note as staff read it beside the state: a cancellation's reason in words (the state
    column already says cancelled), any other note as it is."""
    reason = cancel_reason(note)
    return (reason if reason is not None else note) or ""
