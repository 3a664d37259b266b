"""«Смотрёшка» jobs: catalog import, connection check, drift report, scheduled re-sync
(portal.platforms.smotreshka.console does the work)."""
from __future__ import annotations

from portal.platforms.smotreshka import console

from . import in_app_context, report


@in_app_context
def import_catalog(actor: str) -> str:
    return console.import_catalog(actor)


@in_app_context
def check(actor: str, public_base: str) -> dict:
    answer = console.check(actor, public_base)
    report(result=("reachable" if answer["reachable"] else "unreachable")
           + (f", catalog: {answer['catalog']} subscriptions" if answer["catalog"] is not None else "")
           + (f"; {answer['error']}" if answer["error"] else ""))
    return answer


@in_app_context
def drift_report(actor: str, account_id: int | None = None) -> str:
    return console.drift_report(actor, account_id)


@in_app_context
def scheduled_resync() -> int:
    return console.scheduled_resync()
