"""«Смотрёшка» jobs: catalog import, connection check, drift report, scheduled re-sync
(portal.platforms.smotreshka.console does the work)."""
from __future__ import annotations

from portal.platforms.smotreshka import console

from . import in_app_context


@in_app_context
def import_catalog(actor: str) -> str:
    return console.import_catalog(actor)


@in_app_context
def check(actor: str, public_base: str) -> dict:
    from rq import get_current_job

    report = console.check(actor, public_base)
    job = get_current_job()
    if job is not None:
        job.meta["result"] = ("reachable" if report["reachable"] else "unreachable") + \
            (f", catalog: {report['catalog']} subscriptions" if report["catalog"] is not None else "") + \
            (f"; {report['error']}" if report["error"] else "")
        job.save_meta()
    return report


@in_app_context
def drift_report(actor: str, account_id: int | None = None) -> str:
    return console.drift_report(actor, account_id)


@in_app_context
def scheduled_resync() -> int:
    return console.scheduled_resync()
