"""The outbox's write side: billing records "account X changed, platform P must catch up" in
the caller's transaction, so a change and its outbox row land together or not at all.

* ``notify`` adds rows for every platform the accounts are on (or were synced to);
  ``add_events`` for explicit (account, platform) pairs. The rows are written as enqueued and
  remembered in the session (``ROWS_KEY``): after the commit ``portal.platforms.outbox``
  hands them to RQ, and its sweep takes whatever that hand-off missed.
* Which platforms an account is on (the one place for this rule): its agent's platform and
  the platforms of the services assigned to it and not ended. An account is also notified on
  platforms where it has a sync state, so that a platform hears when the account leaves it.

The platform names come from ``billing.hooks`` (each platform registers there): billing never
imports ``portal.platforms``.
"""
from __future__ import annotations

from functools import cache

from sqlalchemy import Integer, String, bindparam, insert, literal, select, union

from ..extensions import db
from ..models import Account, Agent, AssignedService, CatalogService, OutboxEvent, SyncState, utcnow
from .hooks import known_platforms

CHUNK = 500  # ids per IN (...) list, well under SQLite's parameter limit
# session.info key of the rows this transaction wrote, for the after-commit hand-off to RQ
ROWS_KEY = "outbox_rows"


def _platform_names() -> list:
    """The known platforms' names as literal values of an IN list: a plain list would become an
    expanding parameter, which SQLAlchemy re-renders at every execution of the (cached)
    statements built with it (every payment, every service change)."""
    return [literal(n) for n in known_platforms()]


def _membership(account_ids) -> list:
    """SELECTs of (account_id, platform): the platforms these accounts are on now.

    ``account_ids``: a list of ids or a SELECT of ids."""
    names = _platform_names()
    by_agent = (
        select(Account.id.label("account_id"), Agent.platform.label("platform"))
        .join(Agent, Agent.id == Account.agent_id)
        .where(Account.id.in_(account_ids), Agent.platform.in_(names))
    )
    by_service = (
        select(AssignedService.account_id.label("account_id"), CatalogService.platform.label("platform"))
        .join(CatalogService, CatalogService.id == AssignedService.service_id)
        .where(AssignedService.account_id.in_(account_ids), AssignedService.state != "ended",
               CatalogService.platform.in_(names))
    )
    return [by_agent, by_service]


def platforms_query(account_ids):
    """(account_id, platform) pairs to notify: where the accounts are, or have been synced."""
    synced = select(SyncState.account_id, SyncState.platform).where(
        SyncState.account_id.in_(account_ids), SyncState.platform.in_(_platform_names()))
    return union(*_membership(account_ids), synced).subquery()


@cache
def _on_platform_statement(platforms: tuple[str, ...]):
    """Built once per process and set of platforms: it is asked before every service change
    (the platforms' check_change), and building it cost more than running it."""
    pairs = union(*_membership(bindparam("ids", expanding=True))).subquery()
    return select(pairs.c.account_id).where(pairs.c.platform == bindparam("platform")).limit(1)


def on_platform(account_id: int, platform: str) -> bool:
    stmt = _on_platform_statement(tuple(known_platforms()))
    return db.session.scalar(stmt, {"ids": [account_id], "platform": platform}) is not None


def on_platform_many(account_ids: list[int], platform: str) -> set[int]:
    """``on_platform`` for many accounts at once: the ids of those that are on it."""
    found: set[int] = set()
    for start in range(0, len(account_ids), CHUNK):
        pairs = union(*_membership(account_ids[start:start + CHUNK])).subquery()
        found.update(db.session.scalars(select(pairs.c.account_id).where(pairs.c.platform == platform)))
    return found


@cache
def _notify_statement(platforms: tuple[str, ...], one: bool = False):
    """INSERT ... SELECT of the rows for the accounts in ``ids``, built once per process and
    set of platforms (building it cost more than running it for one account). ``one``: for the
    single account ``id`` (a service change, an upsale): an expanding IN list is compiled again
    at every execution, ~150 Python calls of a call's few thousand."""
    o = OutboxEvent.__table__.c
    pairs = platforms_query(select(bindparam("id", type_=Integer)) if one else bindparam("ids", expanding=True))
    now = bindparam("now", type_=OutboxEvent.__table__.c.created_at.type)
    return insert(OutboxEvent.__table__).from_select(
        ["account_id", "platform", "reason", "created_at", "enqueued_at"],
        select(pairs.c.account_id, pairs.c.platform, bindparam("reason", type_=String()), now, now),
    ).returning(o.id, o.account_id, o.platform, o.reason)


def notify(account_ids, reason: str) -> None:
    """Add outbox rows for these accounts on every platform they are on (or were synced to)."""
    account_ids = list(account_ids)
    if len(account_ids) == 1:
        remember(db.session.execute(_notify_statement(tuple(known_platforms()), True), {
            "id": account_ids[0], "reason": reason[:64], "now": utcnow()}).all())
        return
    for start in range(0, len(account_ids), CHUNK):
        rows = db.session.execute(_notify_statement(tuple(known_platforms())), {
            "ids": account_ids[start:start + CHUNK], "reason": reason[:64], "now": utcnow()}).all()
        remember(rows)


@cache
def _notify_contract_statement(platforms: tuple[str, ...]):
    """``_notify_statement`` for the accounts of one contract (``contract_id``), read in the
    same statement: a payment need not load them first."""
    o = OutboxEvent.__table__.c
    pairs = platforms_query(select(Account.id).where(Account.contract_id == bindparam("contract_id")))
    now = bindparam("now", type_=OutboxEvent.__table__.c.created_at.type)
    return insert(OutboxEvent.__table__).from_select(
        ["account_id", "platform", "reason", "created_at", "enqueued_at"],
        select(pairs.c.account_id, pairs.c.platform, bindparam("reason", type_=String()), now, now),
    ).returning(o.id, o.account_id, o.platform, o.reason)


def notify_contract(contract_id: int, reason: str) -> None:
    """``notify`` for every account of a contract."""
    remember(db.session.execute(_notify_contract_statement(tuple(known_platforms())), {
        "contract_id": contract_id, "reason": reason[:64], "now": utcnow()}).all())


def add_events(pairs, reason: str) -> None:
    """Add outbox rows for explicit (account_id, platform) pairs."""
    now = utcnow()
    rows = [OutboxEvent(account_id=a, platform=p, reason=reason[:64], created_at=now, enqueued_at=now)
            for a, p in pairs]
    db.session.add_all(rows)
    db.session.flush()
    remember([(r.id, r.account_id, r.platform, r.reason) for r in rows])


def remember(rows) -> None:
    """Hand these outbox rows (id, account id, platform, reason) to the after-commit hand-off, as
    every writer of outbox rows must (notify, a posting's or the rule's own statement)."""
    # After commit, these rows are handed to RQ (portal.platforms.outbox.install). They are
    # written as enqueued already, so the hand-off needs no second transaction; if it fails, they are marked
    # un-enqueued again, and if even that fails the sweeper takes them once they are overdue
    # (OUTBOX_REENQUEUE_AFTER after notify: a transaction longer than that, like a full charge
    # run, may see them enqueued twice, which the job id collapses). Rows of a rolled-back
    # transaction are forgotten with it (portal.platforms.outbox.install).
    db.session.info.setdefault(ROWS_KEY, []).extend(tuple(r) for r in rows)
