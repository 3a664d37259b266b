"""Platform sync jobs: reconcile one account on one platform, sweep the outbox, and the
nightly full reconcile (portal.platforms.reconcile and .outbox do the work)."""
from __future__ import annotations

from rq import get_current_job

from portal.platforms import outbox, reconcile

from . import in_app_context


@in_app_context
def reconcile_account(platform: str, account_id: int, scheduled: bool = False) -> str:
    """A worker never waits for a busy account: the job holding it runs this change too."""
    job = get_current_job()
    return reconcile.reconcile_account(platform, account_id, job_id=job.id if job else None, scheduled=scheduled,
                                       wait=0)


@in_app_context
def reconcile_batch(platform: str, account_ids: list[int]) -> dict:
    job = get_current_job()
    return reconcile.reconcile_accounts(platform, account_ids, job_id=job.id if job else None)


@in_app_context
def sweep_outbox() -> dict:
    """Run by the scheduler in its own process (jobs.scheduler), never queued behind a job."""
    return outbox.sweep()


@in_app_context
def reconcile_all() -> int:
    return reconcile.reconcile_all()
