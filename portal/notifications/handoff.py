"""After a commit: notices billing recorded wake the ``prepare`` job (one waits at a time),
delivery rows go to their ``deliver`` jobs (the platforms' outbox hand-off,
``portal.platforms.outbox.install``). When Redis is down the commit stands and the sweep
(``delivery.sweep``) does it later."""
from __future__ import annotations

import logging

from sqlalchemy import event

from ..billing.notices import ROWS_KEY as NOTICES_KEY
from ..extensions import db
from . import delivery

log = logging.getLogger(__name__)


def install(app) -> None:
    """Once per process."""
    if not event.contains(db.session, "after_commit", _after_commit):
        event.listen(db.session, "after_commit", _after_commit)
    if not event.contains(db.session, "after_rollback", _after_rollback):
        event.listen(db.session, "after_rollback", _after_rollback)


def _after_rollback(session) -> None:
    if not session.in_nested_transaction():
        session.info.pop(NOTICES_KEY, None)
        session.info.pop(delivery.ROWS_KEY, None)


def _after_commit(session) -> None:
    if session.in_nested_transaction():
        return
    notices = session.info.pop(NOTICES_KEY, None)
    rows = session.info.pop(delivery.ROWS_KEY, None)
    # the commit stands whatever happens here; the sweep enqueues what is left
    if notices:
        try:  # one waiting job prepares every pending notice: a burst of payments makes one job
            delivery.wake_prepare()
        except Exception:
            log.warning("notifications: %d notice(s) not handed to RQ now, the sweep will", len(notices),
                        exc_info=True)
    if rows:
        try:
            delivery.enqueue_new(rows)
        except Exception:
            log.warning("notifications: %d delivery(ies) not handed to RQ now, the sweep will", len(rows),
                        exc_info=True)
