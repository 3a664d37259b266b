"""The cabinet's intercom section (on the home page, through the platform's
``cabinet_template``): each flat with the intercom service, its access now and why it is
limited, in words a subscriber understands. Only the subscriber's own contracts are passed in
(the home page's ``contracts``), so nothing foreign can show."""
from __future__ import annotations

from ..billing import outbox, self_service
from ..platforms.intercom import sync
from . import bp


def intercom_flats(contracts) -> list[dict]:
    """The subscriber's flats on the intercom platform: account, contract, address, level
    (``full``, ``limited``, ``absent``), the reasons, and what lifts a balance block."""
    flats = []
    for contract in contracts:
        for account in contract.accounts:
            if not sync.intercom_services(account) and not sync.isvyaz_login(account):
                continue
            if not outbox.on_platform(account.id, sync.PLATFORM):
                continue
            level, why = sync.access_level(account)
            if why == ["inactive"] or why == ["no_login"]:
                level = "pending"  # connecting: nothing to explain yet
            flats.append({"account": account, "contract": contract, "level": level, "why": why,
                          "top_up": self_service.top_up_to_unblock(contract) if "blocked:balance" in why else None})
    return flats


@bp.app_context_processor
def _intercom_cabinet_globals():
    return {"intercom_flats": intercom_flats}
