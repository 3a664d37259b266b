"""The intercom sync's own records (portal/models/intercom.py), written during a reconcile.

Each function is one short transaction on its own connection: the reconcile machinery holds
no transaction while the platform is called, and neither do we. Callers hold the profile's
Redis lock (sync.profile_lock), so check-then-insert cannot race for one profile; the
account's attachments are changed only under the account's own reconcile lock.
"""
from __future__ import annotations

from datetime import UTC, timedelta

from sqlalchemy import delete, insert, select, update

from ...extensions import db
from ...models import Account, IntercomAttachment, IntercomProfile, utcnow
from .client import account_key

P = IntercomProfile.__table__
SNAPSHOT_REFRESH = timedelta(minutes=10)
A = IntercomAttachment.__table__


def account_id(account_login: str) -> int | None:
    with db.engine.connect() as conn:
        return conn.scalar(select(Account.__table__.c.id).where(Account.__table__.c.login == account_login))


def attached_logins(account_id: int) -> list[str]:
    with db.engine.connect() as conn:
        return list(conn.scalars(select(A.c.login).where(A.c.account_id == account_id).order_by(A.c.login)))


def attached_accounts(login: str) -> list[int]:
    with db.engine.connect() as conn:
        return list(conn.scalars(select(A.c.account_id).where(A.c.login == login)))


def attach(account_id: int, login: str) -> None:
    with db.engine.begin() as conn:
        if conn.scalar(select(A.c.id).where(A.c.account_id == account_id, A.c.login == login)) is None:
            conn.execute(insert(A).values(account_id=account_id, login=login, created_at=utcnow()))


def detach(account_id: int, login: str) -> None:
    with db.engine.begin() as conn:
        conn.execute(delete(A).where(A.c.account_id == account_id, A.c.login == login))


def note_profile(login: str, created_by_us: bool | None) -> None:
    """Remember a profile we are on; ``created_by_us`` None keeps what is known (a new row:
    linked, not created)."""
    with db.engine.begin() as conn:
        row = conn.execute(select(P.c.id, P.c.created_by_us).where(P.c.login == login)).first()
        if row is None:
            conn.execute(insert(P).values(login=login, created_by_us=bool(created_by_us), phones=[], addresses=[],
                                          created_at=utcnow()))
        elif created_by_us is not None and row.created_by_us != created_by_us:
            conn.execute(update(P).where(P.c.id == row.id).values(created_by_us=created_by_us))


def created_by_us(login: str) -> bool:
    with db.engine.connect() as conn:
        return bool(conn.scalar(select(P.c.created_by_us).where(P.c.login == login)))


def snapshot(login: str, profile: dict, stored=None, stale: list | None = None) -> None:
    """The profile as the platform showed it just now (the admin's drift view reads it).
    Written only when it differs from the stored one, or that one is older than
    SNAPSHOT_REFRESH: the nightly reconcile of an unchanged profile writes nothing.
    ``stored``: the row as ``profiles()`` read it ahead (else it is read here); ``stale``: a
    list to put the login on instead of writing when only the time is old (``touch`` them)."""
    addresses = sorted(({"account_id": _key(a.get("account_id")), "house_id": a.get("house_id"), "flat": a.get("flat"),
                         "access": a.get("access")} for a in profile.get("addresses") or []),
                       key=lambda a: str(a["account_id"]))
    values = {"full_name": profile.get("full_name") or None, "phones": list(profile.get("phones") or []),
              "addresses": addresses}
    now = utcnow()
    row = stored if stored is not None else profiles([login]).get(login)
    if row is None:
        return
    same = {"full_name": row.full_name, "phones": row.phones, "addresses": row.addresses} == values
    fresh = row.checked_at is not None and _aware(row.checked_at) > now - SNAPSHOT_REFRESH
    if same and (fresh or stale is not None):
        if not fresh:
            stale.append(login)
        return
    with db.engine.begin() as conn:
        conn.execute(update(P).where(P.c.login == login).values(**values, checked_at=now))


def touch(logins: list[str]) -> None:
    """These profiles were read just now and showed what is stored."""
    if logins:
        with db.engine.begin() as conn:
            conn.execute(update(P).where(P.c.login.in_(logins)).values(checked_at=utcnow()))


def profiles(logins: list[str]) -> dict:
    """The stored rows of these profiles (created_by_us and the last snapshot), by login."""
    with db.engine.connect() as conn:
        return {r.login: r for r in conn.execute(select(
            P.c.login, P.c.created_by_us, P.c.full_name, P.c.phones, P.c.addresses, P.c.checked_at
        ).where(P.c.login.in_(logins)))} if logins else {}


def attachments(account_ids: list[int]) -> dict[int, set[str]]:
    """Where each of these accounts' addresses may be: the logins, by account id."""
    out: dict[int, set[str]] = {}
    with db.engine.connect() as conn:
        for account_id, login in conn.execute(select(A.c.account_id, A.c.login).where(A.c.account_id.in_(account_ids))):
            out.setdefault(account_id, set()).add(login)
    return out


LOGIN_FIELD = {"name": "isvyaz_login", "title": "Логин «Интерсвязь»", "type": "string",
               "pattern": r"[A-Za-z0-9_.-]{3,64}", "required": False}


def ensure_login_field(conn) -> None:
    """The ``isvyaz_login`` field definition, inserted unless it exists (a parallel save
    inserts nothing: ON CONFLICT DO NOTHING on its unique name), on the caller's connection."""
    from sqlalchemy.dialects import postgresql, sqlite

    from ...models import ExtraFieldDefinition

    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    conn.execute(dialect.insert(ExtraFieldDefinition.__table__).values(**LOGIN_FIELD)
                 .on_conflict_do_nothing(index_elements=["name"]))


def _key(value):
    """Our account id when the platform's value is one (number or string), else as it came."""
    key = account_key(value)
    return value if key is None else key


def _aware(value):
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def forget_profile(login: str) -> None:
    with db.engine.begin() as conn:
        conn.execute(delete(P).where(P.c.login == login))


def account_exists(account_id: int) -> bool:
    with db.engine.connect() as conn:
        return conn.scalar(select(Account.__table__.c.id).where(Account.__table__.c.id == account_id)) is not None
