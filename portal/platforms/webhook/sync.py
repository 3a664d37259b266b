"""Billing state -> webhook document (the one place that decides what the webhook sees)."""
from __future__ import annotations

from .client import WebhookClient


def _tariff(t) -> dict | None:
    return {"id": t.id, "name": t.name} if t is not None else None


def desired_state(account) -> dict:
    """The document for an account on the webhook platform (JSON-friendly; no passwords)."""
    contract = account.contract
    return {
        "login": account.login,
        "present": True,
        "status": account.status,
        "block_reasons": account.reasons,
        "tariff": _tariff(account.tariff),
        "multi_tariffs": [_tariff(t) for t in account.multi_tariffs],
        "services": [
            {"id": s.id, "name": s.service.name, "platform": s.service.platform,
             "external_id": s.service.external_id, "state": s.state, "starts_on": s.starts_on.isoformat(),
             "ends_on": s.ends_on.isoformat() if s.ends_on else None}
            for s in account.services if s.state != "ended"
        ],
        "contract": {"number": contract.number, "balance": str(contract.balance),
                     "credit_limit": str(contract.credit_limit)},
        "address": {"house": account.house, "flat": account.flat},
        "extra": account.extra,
    }


def reconcile(client: WebhookClient, login: str, desired: dict | None, sync=None) -> dict | None:
    """A webhook cannot be read back, so its actual state is the last document it accepted:
    send the whole desired document (idempotent) and return it."""
    client.push(desired if desired is not None else {"login": login, "present": False})
    return desired
