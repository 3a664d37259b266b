"""After a commit: notices billing recorded go to a ``prepare`` job, delivery rows to their
``deliver`` jobs (the platforms' outbox hand-off, ``portal.platforms.outbox.install``). When
Redis is down the commit stands and the sweep (``delivery.sweep``) does it later."""
from __future__ import annotations

import logging
import uuid

from sqlalchemy import event

from ..billing.notices import ROWS_KEY as NOTICES_KEY
from ..extensions import db
from ..queue import get_queue
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
        try:
            get_queue("default").enqueue(delivery.PREPARE_JOB, list(notices), result_ttl=0,
                                         job_id=f"notify-prepare-{uuid.uuid4().hex}",
                                         job_timeout=delivery.JOB_TIMEOUT * 5)
        except Exception:
            log.warning("notifications: %d notice(s) not handed to RQ now, the sweep will", len(notices),
                        exc_info=True)
    if rows:
        try:
            delivery.enqueue(rows)
        except Exception:
            log.warning("notifications: %d delivery(ies) not handed to RQ now, the sweep will", len(rows),
                        exc_info=True)
