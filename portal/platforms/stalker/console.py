"""The Stalker console's work: the snapshot of Stalker's tables (refreshed by a worker job),
and the actions staff take from it.

Jobs (they call Stalker; the web process never does): ``refresh``, ``delete_account``,
``import_channels``, ``check``, ``raw``. Billing-only actions that read the snapshot and
write billing (the outbox then carries the result to Stalker): ``add_account``,
``import_tariff``, ``register_stb``.
"""
from __future__ import annotations

import json
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import parse_qsl

from sqlalchemy import String, cast, delete, func, insert, literal_column, select, text, union_all, update

from ...billing import accounts as billing_accounts
from ...billing import audit, directory, import_start
from ...billing.errors import BillingError
from ...billing.outbox import notify
from ...extensions import db
from ...models import (
    Account,
    Agent,
    CatalogService,
    Contract,
    StalkerBinding,
    StalkerChannel,
    StalkerImportedTariff,
    StalkerSnapshot,
    StalkerSnapshotRow,
    StalkerStb,
    StalkerTvId,
    Tariff,
    utcnow,
)
from ...models.stalker_catalog import EXTERNAL_ID_MAX, StalkerPlanPackage
from ...platforms import connections
from ...platforms.http import PlatformError, audit_calls, recording
from . import binding, catalog
from .client import ApiDisabled, StalkerClient, Unauthorized, normalise_mac

PLATFORM = "stalker"
KINDS = ("accounts", "stb", "channels", "subscriptions", "tariffs")
CHUNK = 5000
TV_ID_RE = re.compile(r"^[1-9][0-9]{0,10}$")  # digits, under 12 characters (else STB resources see a MAC)
LOGIN_RE = billing_accounts.LOGIN_RE


def client() -> StalkerClient:
    conn = connections.load(PLATFORM)
    if conn is None:
        raise PlatformError("no enabled connection for platform 'stalker' (admin → Platform connections)")
    return StalkerClient(conn)


@contextmanager
def audited_calls(actor: str, object_type: str = "system", object_id: int | None = None):
    """Record the Stalker calls made in the block in the audit log (after them, in one commit)."""
    with recording() as calls:
        try:
            yield calls
        finally:
            db.session.rollback()
            audit_calls(calls, actor, object_type, object_id)
            db.session.commit()


# -- the snapshot --------------------------------------------------------------------------------

def _s(*values) -> str:
    return " ".join(str(v) for v in values if v not in (None, "")).lower()


def _shape(kind: str, row: dict) -> tuple[str | None, str]:
    """(key, search text) of a Stalker row."""
    if kind == "accounts":
        return row.get("account_number") or row.get("stb_mac"), _s(row.get("login"), row.get("full_name"),
                                                                   row.get("account_number"), row.get("stb_mac"),
                                                                   row.get("phone"), row.get("tariff_plan"))
    if kind == "stb":
        return row.get("mac"), _s(row.get("mac"), row.get("ls"), row.get("login"), row.get("ip"))
    if kind == "channels":
        return str(row.get("id")), _s(row.get("id"), row.get("number"), row.get("name"))
    if kind == "subscriptions":
        return row.get("ls") or row.get("mac"), _s(row.get("ls"), row.get("mac"))
    return str(row.get("external_id")), _s(row.get("id"), row.get("external_id"), row.get("name"),
                                           *[p.get("name") for p in row.get("packages") or []])


def fetch(c: StalkerClient, kind: str) -> list[dict]:
    return {"accounts": c.accounts, "stb": c.stbs, "channels": c.channels, "subscriptions": c.subscriptions,
            "tariffs": c.tariffs}[kind]()


def store(kind: str, rows: list[dict]) -> int:
    """Replace one table of the snapshot, in one transaction (readers see the old one until
    the commit)."""
    columns = sorted(rows[0]) if rows and isinstance(rows[0], dict) else []
    db.session.execute(delete(StalkerSnapshotRow).where(StalkerSnapshotRow.kind == kind))
    table = StalkerSnapshotRow.__table__
    for start in range(0, len(rows), CHUNK):
        batch = []
        for row in rows[start:start + CHUNK]:
            key, search = _shape(kind, row)
            batch.append({"kind": kind, "key": (str(key)[:100] if key is not None else None), "search": search,
                          "data": row})
        db.session.execute(insert(table), batch)
    snap = db.session.get(StalkerSnapshot, kind) or StalkerSnapshot(kind=kind)
    snap.refreshed_at, snap.rows, snap.columns, snap.error, snap.error_at = utcnow(), len(rows), columns, None, None
    db.session.add(snap)
    db.session.commit()
    _vacuum()
    return len(rows)


def _vacuum() -> None:
    """PostgreSQL: a refresh leaves the old rows dead in the (kind, id) index, and the first
    page would walk them all until autovacuum comes by; clean up and refresh the statistics now."""
    if db.engine.dialect.name == "postgresql":
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM (ANALYZE) stalker_snapshot_rows"))


def refresh(kinds=KINDS, *, actor: str = "system", progress=None) -> dict:
    """Fetch each table from Stalker and replace its snapshot; a table Stalker does not give
    keeps its old rows and shows the error."""
    out = {}
    for i, kind in enumerate(kinds):
        if progress:
            progress(f"{kind} ({i + 1}/{len(kinds)})")
        error = None
        with audited_calls(actor):
            try:
                rows = fetch(client(), kind)
            except PlatformError as e:
                error = str(e)
        if error is None:
            started = time.monotonic()
            out[kind] = store(kind, rows)
            out[f"{kind}_store_s"] = round(time.monotonic() - started, 3)
        else:
            snap = db.session.get(StalkerSnapshot, kind) or StalkerSnapshot(kind=kind, rows=0, columns=[])
            snap.error, snap.error_at = error[:2000], utcnow()
            db.session.add(snap)
            db.session.commit()
            out[kind] = f"error: {error}"
    return out


def snapshot_info() -> dict[str, StalkerSnapshot]:
    return {s.kind: s for s in db.session.scalars(select(StalkerSnapshot))}


def snapshot_row(row_id: int, kind: str) -> dict:
    row = db.session.get(StalkerSnapshotRow, row_id)
    if row is None or row.kind != kind:
        raise BillingError({"row": "no such row in the snapshot: refresh the table"})
    return row.data


# -- links between Stalker rows and billing ----------------------------------------------------

def page_links(rows: list[dict]) -> tuple[list[int | None], set[str]]:
    """For a page of Stalker account rows, in one query: the billing account each row is
    linked to (or None), and which of their ``tariff_plan`` values have a billing tariff.

    A row with a login is linked by its TV ID (account_number) together with that login, by
    the billing login on a Stalker agent, by the Stalker login kept for an account, or by a
    registered STB, in that order. A row without a login is linked by its account number (the
    TV ID of a billing account, or the id of a Stalker account that has no TV ID of its own) or
    by a registered STB."""
    numbers = [int(r["account_number"]) for r in rows if TV_ID_RE.match(str(r.get("account_number") or ""))]
    logins = [r.get("login") for r in rows if r.get("login")]
    macs = [r.get("stb_mac") for r in rows if r.get("stb_mac")]

    def part(origin: int, ident, key):
        return select(ident.label("ident"), key.label("key"), literal_column(str(origin)).label("src"))

    parts = []
    if numbers:
        tv_join = (Account, Account.id == StalkerTvId.account_id)
        parts.append(part(0, StalkerTvId.account_id, func.coalesce(StalkerTvId.login, Account.login))
                     .join(*tv_join).where(StalkerTvId.tv_id.in_(numbers)))
        parts.append(part(5, StalkerTvId.account_id, cast(StalkerTvId.tv_id, String))
                     .join(*tv_join).where(StalkerTvId.tv_id.in_(numbers)))
        parts.append(part(6, Account.id, cast(Account.id, String)).join(Agent, Agent.id == Account.agent_id)
                     .outerjoin(StalkerTvId, StalkerTvId.account_id == Account.id)
                     .where(Account.id.in_(numbers), Agent.platform == PLATFORM, StalkerTvId.account_id.is_(None)))
    if logins:
        parts.append(part(1, Account.id, Account.login).join(Agent, Agent.id == Account.agent_id)
                     .where(Account.login.in_(logins), Agent.platform == PLATFORM))
        parts.append(part(2, StalkerTvId.account_id, StalkerTvId.login).where(StalkerTvId.login.in_(logins)))
    if macs:
        parts.append(part(3, StalkerStb.account_id, StalkerStb.mac).where(StalkerStb.mac.in_(macs)))
    found = db.session.execute(union_all(*parts) if len(parts) > 1 else parts[0]).all() if parts else []
    by_login: dict[str, int] = {}
    by_number: dict[str, int] = {}
    by_mac: dict[str, int] = {}
    for ident, key, origin in sorted(found, key=lambda r: int(r[2])):
        if origin == 0:
            by_login[key] = ident
        elif origin in (1, 2):
            by_login.setdefault(key, ident)
        elif origin == 3:
            by_mac[key] = ident
        else:
            by_number.setdefault(key, ident)
    guesses = [(by_login.get(r["login"]) if r.get("login") else by_number.get(str(r.get("account_number") or "")))
               or by_mac.get(r.get("stb_mac") or "") for r in rows]
    # A binding decides (binding.py): the user an account is bound to is linked to it, and an
    # account bound elsewhere (or to nothing, after a conflict) is never linked by a guess: a
    # stranger who has its login is not "in billing".
    bound = dict(db.session.execute(select(StalkerBinding.login, StalkerBinding.account_id).where(
        StalkerBinding.state == "bound", StalkerBinding.login.in_(logins))).all()) if logins else {}
    bindings = {b.account_id: b for b in db.session.scalars(select(StalkerBinding).where(
        StalkerBinding.account_id.in_([g for g in guesses if g is not None])))} if any(guesses) else {}

    def binding_allows(r: dict, account_id) -> bool:
        b = bindings.get(account_id)
        if b is None:
            return True  # not bound yet: the guess stands
        if r.get("login"):
            return b.login == r["login"] and b.state in ("bound", "creating")
        # a row without a login: its number or STB (the snapshot may predate the login the
        # sync gave that user since)
        return b.state == "bound" and (
            b.account_number == str(r.get("account_number") or "") or bool(b.mac and b.mac == r.get("stb_mac")))

    linked = [bound[r["login"]] if r.get("login") in bound else (guess if binding_allows(r, guess) else None)
              for r, guess in zip(rows, guesses)]
    return linked, catalog.known_plans(r.get("tariff_plan") for r in rows)


def page_conflicts(rows: list[dict]) -> list[tuple[int, str] | None]:
    """For a page of Stalker account rows: the billing account (id, login) that met each row's
    user as a stranger where it would have written (binding.record_conflict), or None."""
    pending = db.session.execute(select(StalkerBinding.account_id, StalkerBinding.conflict, Account.login)
                                 .join(Account, Account.id == StalkerBinding.account_id)
                                 # (None may be stored as JSON null: compare the text)
                                 .where(func.coalesce(cast(StalkerBinding.conflict, String), "null") != "null")).all()
    by_login, by_mac = {}, {}
    for account_id, conflict, login in pending:
        user = (conflict or {}).get("user") or {}
        if user.get("login"):
            by_login[user["login"]] = (account_id, login)
        if user.get("stb_mac"):
            by_mac[user["stb_mac"]] = (account_id, login)
    return [by_login.get(r.get("login") or "") or by_mac.get(r.get("stb_mac") or "") for r in rows]


def stalker_agent() -> Agent:
    agent = db.session.scalar(select(Agent).where(Agent.platform == PLATFORM, Agent.kind == "iptv").order_by(Agent.id))
    if agent is None:
        raise BillingError({"agent": "no agent of kind iptv bound to the stalker platform: create one in Agents"})
    return agent


def _free_tv_id(preferred: int) -> int:
    taken = db.session.scalar(select(func.count()).select_from(StalkerTvId).where(StalkerTvId.tv_id == preferred))
    if not taken:
        return preferred
    return (db.session.scalar(select(func.max(StalkerTvId.tv_id))) or 0) + 1


def _usable_tv_id(number: str, account_id: int | None) -> bool:
    if not TV_ID_RE.match(number or ""):
        return False
    n = int(number)
    if db.session.scalar(select(StalkerTvId.account_id).where(StalkerTvId.tv_id == n)) not in (None, account_id):
        return False
    # another account without a TV ID row uses its id as TV ID
    other = db.session.get(Account, n)
    return other is None or other.id == account_id or db.session.get(StalkerTvId, n) is not None


# -- "+": a Stalker account into billing -------------------------------------------------------

class InBilling(BillingError):
    """The Stalker account of the row is in billing already (a second "+", a double click)."""

    def __init__(self, account_id: int, fields: dict):
        super().__init__(fields)
        self.account_id = account_id


@dataclass
class AddPlan:
    """What "+" on a snapshot row would do (nothing written yet)."""
    data: dict
    login: str                  # Stalker's login ("" when it has none)
    number: str                 # Stalker's account_number
    mac: str | None
    tariff: Tariff
    agent: Agent
    existing: Account | None    # billing's account with that login
    contract: Contract | None   # the contract the TV account joins (None: a new subscriber)
    new_login: str | None       # the billing login of the new account (None: ``existing`` is linked)
    watching: bool              # Stalker shows the user active
    packages: list              # the CatalogServices of the optional packages it has, which the tariff offers
    dropped: list[str]          # packages it has that the tariff does not offer (the sync switches them off)


def plan_add(row_id: int) -> AddPlan:
    """Check the row can come into billing and work out how ("+" and its dialog); field errors
    otherwise (InBilling when it is billing's already)."""
    data = snapshot_row(row_id, "accounts")
    login, plan = str(data.get("login") or ""), str(data.get("tariff_plan") or "")
    number, mac = str(data.get("account_number") or ""), normalise_mac(data.get("stb_mac") or "")
    errors = {}
    tariff_id = catalog.tariff_of(plan)
    tariff = db.session.get(Tariff, tariff_id) if tariff_id is not None else None
    if tariff is None:
        errors["tariff_plan"] = f"no billing tariff {plan or '—'}: import the Stalker plan first"
    linked = page_links([data])[0][0]
    if linked is not None:
        raise InBilling(linked, {"login" if login else "account_number": f"{login or number} is in billing already"})
    if not login and generated_login(number) is None:
        errors["account_number"] = ("the Stalker account has no login and no account number to name the "
                                    "billing account after: set one of them in Stalker")
    elif not login and not mac and not _usable_tv_id(number, None):
        errors["account_number"] = ("the Stalker account has no login, no MAC, and its account number cannot be "
                                    "a TV ID: billing could not find it in Stalker again; set a login or a MAC "
                                    "in Stalker")
    agent = None
    try:
        agent = stalker_agent()
    except BillingError as e:
        errors.update(e.fields)
    existing = db.session.scalar(select(Account).where(Account.login == login)) if login else None
    if existing is None and login and not LOGIN_RE.match(login):
        errors["login"] = "1-64 latin letters, digits, _ . @ -"
    if errors:
        raise BillingError(errors)
    if existing is not None and existing.agent.platform == PLATFORM:
        contract, new_login = existing.contract, None  # already the TV account: link it
    elif existing is not None:
        contract, new_login = existing.contract, _free_login(f"{login}-tv", "{}{}")  # joins that contract
    else:
        contract, new_login = None, login or _free_login(generated_login(number), "{}-{}")
    packages, dropped = _kept_packages(tariff, data.get("subscribed") or [])
    return AddPlan(data=data, login=login, number=number, mac=mac, tariff=tariff, agent=agent, existing=existing,
                   contract=contract, new_login=new_login, watching=str(data.get("status")) != "0",
                   packages=packages, dropped=dropped)


def _kept_packages(tariff: Tariff, subscribed) -> tuple[list[CatalogService], list[str]]:
    """Of the optional packages a Stalker user has: the billing services "+" assigns (those the
    tariff offers), and the rest (billing does not offer them on this tariff)."""
    offered = {catalog.package_of(s): s for s in tariff.services if catalog.package_of(s)}
    wanted = [str(p) for p in subscribed if p]
    return [offered[p] for p in wanted if p in offered], [p for p in wanted if p not in offered]


def add_preview(row_id: int) -> dict:
    """The "+" dialog: the plan, what each way of starting billing moves, the default."""
    plan = plan_add(row_id)
    starting = plan.new_login is not None or plan.existing.status in ("inactive", "disabled")
    previews = import_start.preview(plan.tariff, plan.contract, watching=plan.watching,
                                    services=plan.packages) if starting else {}
    return {"plan": plan, "previews": previews,
            "default": import_start.default_option(previews, watching=plan.watching) if starting else None}


def _lock_row(row_id: int) -> None:
    """Serialise "+" on one row (a double click, two staff): the second waits for the first's
    commit and then finds the account in billing."""
    t = StalkerSnapshotRow.__table__
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(select(t.c.id).where(t.c.id == row_id).with_for_update())
    else:  # SQLite: the database's write lock, taken by a no-op write
        db.session.execute(update(t).where(t.c.id == row_id).values(kind=t.c.kind))


def add_account(row_id: int, *, actor: str, start: str | None = None) -> Account:
    """Add the Stalker account of a snapshot row to billing (billing only: the outbox carries
    the result, e.g. a new account_number, to Stalker) and bind it to that Stalker user.
    ``start``: how billing starts for it (billing.import_start; None: the default, which
    never blocks a user Stalker shows active). The caller commits."""
    _lock_row(row_id)
    plan = plan_add(row_id)
    data, login, number, mac = plan.data, plan.login, plan.number, plan.mac
    if plan.new_login is None:
        account, kept_login = plan.existing, None
    else:
        contract = plan.contract
        if contract is None:
            phones = [data["phone"]] if re.fullmatch(r"[0-9+()\- ]{3,40}", str(data.get("phone") or "")) else []
            subscriber = directory.save_subscriber({"full_name": data.get("full_name") or plan.new_login,
                                                    "phones": phones, "notes": "Stalker"}, actor=actor)
            contract = directory.save_contract({"subscriber_id": subscriber.id}, actor=actor)
        kept_login = login if plan.existing is not None else None  # Stalker keeps its login
        account = billing_accounts.create_account(
            {"contract_id": contract.id, "login": plan.new_login, "agent_id": plan.agent.id,
             "tariff_id": plan.tariff.id}, actor=actor)
    tv = db.session.get(StalkerTvId, account.id)
    if tv is None:
        tv_number = int(number) if _usable_tv_id(number, account.id) else _free_tv_id(account.id)
        db.session.add(StalkerTvId(account_id=account.id, tv_id=tv_number, login=kept_login))
        db.session.flush()
    if mac and db.session.scalar(select(func.count()).select_from(StalkerStb).where(StalkerStb.mac == mac)) == 0:
        db.session.add(StalkerStb(account_id=account.id, mac=mac, serial=data.get("stb_sn") or None))
        db.session.flush()
    binding.bind(account.id, login=login or None, account_number=number or None, mac=mac)
    if account.status in ("inactive", "disabled"):
        if start is None:
            start = import_start.default_option(import_start.preview(
                account.tariff, account.contract, watching=plan.watching, services=plan.packages),
                watching=plan.watching)
        import_start.start(account, start, actor=actor, blocked=not plan.watching, services=plan.packages)
    else:
        notify([account.id], "stalker.link")
    audit.record(actor, "stalker.account_add", account, f"{login or account.login} from Stalker",
                 after={"stalker": {k: data.get(k) for k in ("login", "account_number", "tariff_plan", "status",
                                                              "stb_mac")},
                        "tv_id": tv_id_of(account.id), "start": start,
                        "packages": [catalog.package_of(s) for s in plan.packages], "dropped": plan.dropped})
    return account


def generated_login(number: str) -> str | None:
    """The billing login "+" gives a Stalker account without a login: ``tv`` + its account
    number (``tv501``), or None when the number cannot make a login."""
    candidate = f"tv{number}"
    return candidate if number and len(candidate) <= 60 and LOGIN_RE.match(candidate) else None


def _free_login(base: str, pattern: str) -> str:
    """``base``, or ``pattern.format(base, n)`` for the first n = 2, 3, … that billing has free."""
    candidate, n = base[:64], 1
    while db.session.scalar(select(func.count()).select_from(Account).where(Account.login == candidate)):
        n += 1
        candidate = pattern.format(base, n)[:64]
    return candidate


def tv_id_of(account_id: int) -> int:
    row = db.session.get(StalkerTvId, account_id)
    return row.tv_id if row else account_id


# -- STBs -------------------------------------------------------------------------------------

def register_stb(account_id, mac: str, serial: str | None, *, actor: str) -> StalkerStb:
    """Register an STB in billing on an account (its MAC goes to Stalker as stb_mac)."""
    errors = {}
    account = db.session.get(Account, account_id) if isinstance(account_id, int) else None
    if account is None:
        account = db.session.scalar(select(Account).where(Account.login == str(account_id or "")))
    if account is None:
        errors["account"] = "no such account"
    normal = normalise_mac(mac)
    if normal is None:
        errors["mac"] = "a MAC address like 00:1A:79:12:34:56"
    elif db.session.scalar(select(func.count()).select_from(StalkerStb).where(StalkerStb.mac == normal)):
        errors["mac"] = "already registered"
    if serial is not None and len(serial) > 64:
        errors["serial"] = "at most 64 characters"
    if errors:
        raise BillingError(errors)
    stb = StalkerStb(account_id=account.id, mac=normal, serial=serial or None)
    db.session.add(stb)
    db.session.flush()
    audit.record(actor, "stalker.stb_register", account, f"STB {normal}", after={"mac": normal, "serial": serial})
    notify([account.id], "stalker.stb")
    return stb


def remove_stb(stb_id: int, *, actor: str) -> StalkerStb:
    """Remove an STB registered in billing (Stalker gets the account's next STB, or none, as
    its stb_mac at the next sync). The caller commits."""
    stb = db.session.get(StalkerStb, stb_id)
    if stb is None:
        raise BillingError({"stb": "no such STB in billing (removed already?)"})
    account = db.session.get(Account, stb.account_id)
    db.session.delete(stb)
    db.session.flush()
    audit.record(actor, "stalker.stb_remove", account, f"STB {stb.mac}", before={"mac": stb.mac, "serial": stb.serial})
    notify([account.id], "stalker.stb")
    return stb


def billing_stbs(q: str, after: int | None, limit: int) -> dict:
    """A keyset page (by id) of the STBs registered in billing; ``q`` matches the MAC or the
    account's login. Items: (stb, login)."""
    query = select(StalkerStb, Account.login).join(Account, Account.id == StalkerStb.account_id)
    if q:
        mac_part = q.upper().replace("-", ":")
        query = query.where(StalkerStb.mac.contains(mac_part, autoescape=True)
                            | Account.login.icontains(q, autoescape=True))
    if after is not None:
        query = query.where(StalkerStb.id > after)
    rows = db.session.execute(query.order_by(StalkerStb.id).limit(limit + 1)).all()
    items = rows[:limit]
    return {"items": items, "next_after": items[-1][0].id if len(rows) > limit else None}


# -- tariff plans -----------------------------------------------------------------------------

def import_tariff(row_id: int, *, actor: str) -> Tariff:
    """Create (or re-sync) the billing tariff of a Stalker plan, bound to the plan's external_id
    (any text up to 64 characters; a numeric one is also the new tariff's id, as before), with
    the plan's packages recorded as optional or mandatory: the optional ones become catalog
    services bound to Stalker that the tariff offers; the mandatory ones come with the plan
    and are not billing services. The caller commits."""
    plan = snapshot_row(row_id, "tariffs")
    raw_ext, name = plan.get("external_id"), str(plan.get("name") or "").strip()
    ext = catalog.valid_external_id(raw_ext)
    if ext is None:
        raise BillingError({"external_id": f"the plan's external_id «{raw_ext or ''}» is empty or longer than "
                                           f"{EXTERNAL_ID_MAX} characters: set one in Stalker"})
    link = db.session.scalar(select(StalkerImportedTariff).where(StalkerImportedTariff.plan_external_id == ext))
    tariff = db.session.get(Tariff, link.tariff_id) if link is not None else None
    numeric = ext.isdigit() and 0 < int(ext) < 2 ** 31
    if tariff is None and numeric and db.session.get(Tariff, int(ext)) is not None:
        other = db.session.get(Tariff, int(ext))
        if db.session.get(StalkerImportedTariff, other.id) is None:
            # by the old rule (tariff id = external_id) it may stand for this plan already
            raise BillingError({"external_id": f"tariff {ext} «{other.name}» is an unrelated billing tariff: "
                                               "change the plan's external_id in Stalker"})
        numeric = False  # the id is another plan's tariff: this one gets a fresh id
    packages, services, skipped = [], [], []
    for pkg in plan.get("packages") or []:
        pext = catalog.valid_external_id(pkg.get("external_id"))
        if pext is None or any(p.package_external_id == pext for p in packages):
            skipped.append(str(pkg.get("name") or pkg.get("id") or ""))
            continue
        optional = str(pkg.get("optional")) == "1"
        pname = str(pkg.get("name") or pext)[:200]
        packages.append(StalkerPlanPackage(package_external_id=pext, name=pname, optional=optional))
        if optional:
            service = db.session.scalar(select(CatalogService).filter_by(platform=PLATFORM, external_id=pext))
            # no IPTV kind: whether a package is optional is the plan's (stalker_plan_packages), and
            # a tariff change ends a package the new tariff does not offer (billing.accounts keeps
            # services with a kind while the tariff offers any TV on the platform)
            values = {"name": pname, "price": str(pkg.get("price") or "0"), "platform": PLATFORM,
                      "external_id": pext, "iptv_kind": None}
            services.append(directory.save_service(values, actor=actor, service=service))
    title = name or f"Stalker {ext}"
    creating = tariff is None
    clash = db.session.scalar(select(Tariff).where(Tariff.name == title, Tariff.id != (None if creating
                                                                                       else tariff.id)))
    if clash is not None:
        title = f"{title} (Stalker {ext})"[:200]
    if creating:
        tariff = Tariff(id=int(ext) if numeric else None, name=title, kind="services", is_multi=False)
    # the tariff keeps what staff added that is not Stalker's; Stalker's offer is the optional packages
    kept = [s.id for s in tariff.services if s.platform != PLATFORM] if not creating else []
    values = {"name": title, "service_ids": kept + [s.id for s in services]}
    if creating:
        values["monthly_fee"] = "0"  # Stalker plans carry no price: staff set the fee in billing
    directory.save_tariff(values, actor=actor, tariff=tariff)
    if creating and numeric:
        _advance_sequence()
    link = link or StalkerImportedTariff(tariff_id=tariff.id, plan_external_id=ext, plan_name=name)
    link.plan_name, link.imported_at, link.packages_known = name, utcnow(), True
    db.session.add(link)
    db.session.flush()
    db.session.execute(delete(StalkerPlanPackage).where(StalkerPlanPackage.tariff_id == tariff.id))
    for p in packages:
        p.tariff_id = tariff.id
    db.session.add_all(packages)
    db.session.flush()
    audit.record(actor, "stalker.tariff_import" if creating else "stalker.tariff_resync", tariff, title,
                 after={"external_id": ext, "optional": [p.package_external_id for p in packages if p.optional],
                        "mandatory": [p.package_external_id for p in packages if not p.optional],
                        "skipped": skipped})
    return tariff


def _advance_sequence() -> None:
    """PostgreSQL: a tariff inserted with an explicit id leaves the id sequence behind."""
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("SELECT setval(pg_get_serial_sequence('tariffs', 'id'), "
                                "GREATEST((SELECT max(id) FROM tariffs), 1))"))


# -- jobs: channels, delete, check, raw -------------------------------------------------------

def import_channels(*, actor: str) -> int:
    """Replace billing's channel list with Stalker's, in one transaction: if Stalker cannot
    be read or a row is unusable, the old list stays."""
    with audited_calls(actor):
        rows = client().channels()
    try:
        new = []
        for r in rows:
            new.append(StalkerChannel(id=int(r["id"]), number=int(r["number"]) if str(r.get("number") or "").isdigit()
                                      else None, name=str(r.get("name") or r["id"])[:200],
                                      hd=str(r.get("hd")) == "1", enabled=True))
        db.session.execute(delete(StalkerChannel))
        db.session.add_all(new)
        db.session.flush()
        audit.record(actor, "stalker.channels_import", None, f"{len(new)} channels from Stalker",
                     after={"ids": [c.id for c in new][:1000]}, object_type="system")
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return len(new)


def delete_account(row_id: int, *, actor: str) -> str:
    """Delete the Stalker account of a snapshot row from Stalker (billing is not touched)."""
    data = snapshot_row(row_id, "accounts")
    ident = data.get("stb_mac") or data.get("account_number")
    db.session.rollback()
    with audited_calls(actor):
        if not ident:
            raise PlatformError("the Stalker account has neither a MAC nor an account number")
        client().delete_account(ident)
    db.session.execute(delete(StalkerSnapshotRow).where(StalkerSnapshotRow.id == row_id))
    audit.record(actor, "stalker.account_delete", None, f"{data.get('login')} deleted from Stalker",
                 after={k: data.get(k) for k in ("login", "account_number", "stb_mac")}, object_type="system")
    db.session.commit()
    return str(data.get("login"))


def check(*, actor: str) -> dict:
    """Is Stalker reachable, are the credentials accepted, is its API switched on?"""
    out = {"reachable": False, "credentials": None, "api_enabled": None, "error": None, "plans": None}
    with audited_calls(actor):
        try:
            out["plans"] = len(client().tariffs())
            out.update(reachable=True, credentials=True, api_enabled=True)
        except ApiDisabled as e:
            out.update(reachable=True, api_enabled=False, error=str(e))
        except Unauthorized as e:
            out.update(reachable=True, credentials=False, api_enabled=True, error=str(e))
        except PlatformError as e:
            text_ = str(e)
            out["reachable"] = text_.startswith("HTTP ") or not any(
                w in text_ for w in ("ConnectionError", "Timeout", "no enabled connection"))
            out["error"] = text_
    return out


def parse_params(raw: str) -> dict:
    """``k=v&k2=v2`` (or one per line) -> a dict; ``k[]=a&k[]=b`` -> a list."""
    out: dict = {}
    for key, value in parse_qsl((raw or "").replace("\r", "").replace("\n", "&"), keep_blank_values=True):
        key = key.strip()
        if not key:
            continue
        if key.endswith("[]"):
            out.setdefault(key[:-2], []).append(value)
        else:
            out[key] = value
    return out


def raw(method: str, resource: str, params: str, *, actor: str) -> str:
    """The raw console: one request as typed; the answer pretty-printed (or Stalker's error)."""
    data = parse_params(params)
    audit.record(actor, "stalker.console", None, f"{method} {resource}"[:500],
                 after={"method": method, "resource": resource, "params": sorted(data)}, object_type="system")
    db.session.commit()
    with audited_calls(actor):
        try:
            result = client().raw(method, resource, data or None)
        except PlatformError as e:
            return json.dumps({"status": "ERROR", "error": str(e)}, ensure_ascii=False, indent=2)
    return json.dumps({"status": "OK", "results": result}, ensure_ascii=False, indent=2)

