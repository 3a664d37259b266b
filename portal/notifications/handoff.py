"""After a commit: notices billing recorded wake the ``prepare`` job (one waits at a time),
delivery rows go to their ``deliver`` jobs (the platforms' outbox hand-off,
``portal.platforms.outbox.install``). When Redis is down the commit stands and the sweep
(``delivery.sweep``) does it later."""
from __future__ import annotations

import logging

from sqlalchemy import event

from ..billing.notices import ROWS_KEY as NOTICES_KEY
from ..extensions import db
from ..queue import add_handoff, hand_off
from . import delivery

log = logging.getLogger(__name__)


def install(app) -> None:
    """Once per process."""
    add_handoff(_collect)  # H8: in one Redis round trip with the outbox's (queue.hand_off)
    if not event.contains(db.session, "after_commit", hand_off):
        event.listen(db.session, "after_commit", hand_off)
    if not event.contains(db.session, "after_rollback", _after_rollback):
        event.listen(db.session, "after_rollback", _after_rollback)


def _after_rollback(session) -> None:
    if not session.in_nested_transaction():
        session.info.pop(NOTICES_KEY, None)
        session.info.pop(delivery.ROWS_KEY, None)


def _collect(session):
    """The after-commit hand-off (queue.add_handoff): notices wake the prepare job (one call in
    the shared pipeline); delivery rows go to RQ in their own batches after it."""
    notices = session.info.pop(NOTICES_KEY, None)
    rows = session.info.pop(delivery.ROWS_KEY, None)
    if not notices and not rows:
        return None

    def finish(results) -> None:
        # the commit stands whatever happens here; the sweep enqueues what is left
        if notices and isinstance(results[0], Exception):
            log.warning("notifications: %d notice(s) not handed to RQ now, the sweep will", len(notices),
                        exc_info=results[0])
        if rows:
            try:
                delivery.enqueue_new(rows)
            except Exception:
                log.warning("notifications: %d delivery(ies) not handed to RQ now, the sweep will", len(rows),
                            exc_info=True)

    return ([delivery.prepare_call()] if notices else []), finish
