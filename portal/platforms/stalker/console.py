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
from urllib.parse import parse_qsl

from sqlalchemy import String, cast, delete, func, insert, literal_column, select, text, union_all

from ...billing import accounts as billing_accounts
from ...billing import audit, directory
from ...billing.errors import BillingError
from ...extensions import db
from ...models import (
    Account, Agent, CatalogService, StalkerChannel, StalkerImportedTariff, StalkerSnapshot, StalkerSnapshotRow,
    StalkerStb, StalkerTvId, Tariff, utcnow,
)
from ...platforms import connections
from ...platforms.http import PlatformError, audit_calls, recording
from ...platforms.outbox import notify
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
    linked to (or None), and which of their ``tariff_plan`` values are billing tariff ids.

    A row with a login is linked by its TV ID (account_number) together with that login, by
    the billing login on a Stalker agent, by the Stalker login kept for an account, or by a
    registered STB, in that order. A row without a login is linked by its account number (the
    TV ID of a billing account, or the id of a Stalker account that has no TV ID of its own) or
    by a registered STB."""
    numbers = [int(r["account_number"]) for r in rows if TV_ID_RE.match(str(r.get("account_number") or ""))]
    logins = [r.get("login") for r in rows if r.get("login")]
    macs = [r.get("stb_mac") for r in rows if r.get("stb_mac")]
    plans = [int(p) for p in {str(r.get("tariff_plan") or "") for r in rows} if p.isdigit() and len(p) < 10]

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
    if plans:
        parts.append(part(4, Tariff.id, cast(Tariff.id, String)).where(Tariff.id.in_(plans)))
    found = db.session.execute(union_all(*parts) if len(parts) > 1 else parts[0]).all() if parts else []
    by_login: dict[str, int] = {}
    by_number: dict[str, int] = {}
    by_mac: dict[str, int] = {}
    tariffs: set[str] = set()
    for ident, key, origin in sorted(found, key=lambda r: int(r[2])):
        if origin == 0:
            by_login[key] = ident
        elif origin in (1, 2):
            by_login.setdefault(key, ident)
        elif origin == 3:
            by_mac[key] = ident
        elif origin == 4:
            tariffs.add(key)
        else:
            by_number.setdefault(key, ident)
    linked = [(by_login.get(r["login"]) if r.get("login") else by_number.get(str(r.get("account_number") or "")))
              or by_mac.get(r.get("stb_mac") or "") for r in rows]
    return linked, tariffs


def known_tariff_ids(values) -> set[str]:
    ids = [int(v) for v in values if str(v or "").isdigit() and len(str(v)) < 10]
    if not ids:
        return set()
    return {str(i) for i in db.session.scalars(select(Tariff.id).where(Tariff.id.in_(ids)))}


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

def add_account(row_id: int, *, actor: str) -> Account:
    """Add the Stalker account of a snapshot row to billing (billing only: the outbox carries
    the result, e.g. a new account_number, to Stalker). The caller commits."""
    data = snapshot_row(row_id, "accounts")
    login, plan = str(data.get("login") or ""), str(data.get("tariff_plan") or "")
    number, mac = str(data.get("account_number") or ""), normalise_mac(data.get("stb_mac") or "")
    errors = {}
    tariff = db.session.get(Tariff, int(plan)) if plan.isdigit() and len(plan) < 10 else None
    if tariff is None:
        errors["tariff_plan"] = f"no billing tariff {plan or '—'}: import the Stalker plan first"
    linked = page_links([data])[0][0]
    if linked is not None:
        errors["login" if login else "account_number"] = f"{login or number} is in billing already"
    elif not login and generated_login(number) is None:
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
        account, kept_login = existing, None  # already the TV account: link it
    else:
        if existing is not None:
            contract = existing.contract  # the TV service joins that subscriber's contract
            new_login, kept_login = _free_login(f"{login}-tv", "{}{}"), login
        else:
            phones = [data["phone"]] if re.fullmatch(r"[0-9+()\- ]{3,40}", str(data.get("phone") or "")) else []
            new_login = login or _free_login(generated_login(number), "{}-{}")  # sent to Stalker as its login
            subscriber = directory.save_subscriber({"full_name": data.get("full_name") or new_login,
                                                    "phones": phones, "notes": "Stalker"}, actor=actor)
            contract = directory.save_contract({"subscriber_id": subscriber.id}, actor=actor)
            kept_login = None
        account = billing_accounts.create_account(
            {"contract_id": contract.id, "login": new_login, "agent_id": agent.id, "tariff_id": tariff.id}, actor=actor)
    tv = db.session.get(StalkerTvId, account.id)
    if tv is None:
        tv_number = int(number) if _usable_tv_id(number, account.id) else _free_tv_id(account.id)
        db.session.add(StalkerTvId(account_id=account.id, tv_id=tv_number, login=kept_login))
        db.session.flush()
    if mac and db.session.scalar(select(func.count()).select_from(StalkerStb).where(StalkerStb.mac == mac)) == 0:
        db.session.add(StalkerStb(account_id=account.id, mac=mac, serial=data.get("stb_sn") or None))
        db.session.flush()
    if account.status in ("inactive", "disabled"):
        billing_accounts.activate(account, actor=actor)
        if str(data.get("status")) == "0":
            billing_accounts.block(account, "manager", actor=actor)
    else:
        notify([account.id], "stalker.link")
    audit.record(actor, "stalker.account_add", account, f"{login or account.login} from Stalker",
                 after={"stalker": {k: data.get(k) for k in ("login", "account_number", "tariff_plan", "status",
                                                              "stb_mac")},
                        "tv_id": tv_id_of(account.id)})
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
    """Create (or re-sync) the billing tariff of a Stalker plan: id = external_id, the plan's
    name, its packages as catalog services bound to Stalker. The caller commits."""
    plan = snapshot_row(row_id, "tariffs")
    ext, name = str(plan.get("external_id") or ""), str(plan.get("name") or "").strip()
    if not (ext.isdigit() and 0 < int(ext) < 2 ** 31):
        raise BillingError({"external_id": f"the plan's external_id {ext or '—'} is not a number: "
                                           "billing tariff ids are numbers (set a numeric external_id in Stalker)"})
    tariff = db.session.get(Tariff, int(ext))
    link = db.session.get(StalkerImportedTariff, int(ext))
    if tariff is not None and link is None:
        raise BillingError({"external_id": f"tariff {ext} «{tariff.name}» is an unrelated billing tariff: "
                                           "change the plan's external_id in Stalker"})
    services = []
    for pkg in plan.get("packages") or []:
        pext = str(pkg.get("external_id") or "")
        if not pext:
            continue
        service = db.session.scalar(select(CatalogService).filter_by(platform=PLATFORM, external_id=pext))
        values = {"name": str(pkg.get("name") or pext)[:200], "price": str(pkg.get("price") or "0"),
                  "platform": PLATFORM, "external_id": pext,
                  "iptv_kind": "additional" if str(pkg.get("optional")) == "1" else "basic"}
        services.append(directory.save_service(values, actor=actor, service=service))
    title = name or f"Stalker {ext}"
    clash = db.session.scalar(select(Tariff).where(Tariff.name == title, Tariff.id != int(ext)))
    if clash is not None:
        title = f"{title} (Stalker {ext})"
    creating = tariff is None
    if creating:
        tariff = Tariff(id=int(ext), name=title, kind="services", is_multi=False)
    values = {"name": title, "service_ids": [s.id for s in services]}
    if creating:
        values["monthly_fee"] = "0"  # Stalker plans carry no price: staff set the fee in billing
    directory.save_tariff(values, actor=actor, tariff=tariff)
    if creating:
        _advance_sequence()
    link = link or StalkerImportedTariff(tariff_id=tariff.id, plan_name=name)
    link.plan_name, link.imported_at = name, utcnow()
    db.session.add(link)
    db.session.flush()
    audit.record(actor, "stalker.tariff_import" if creating else "stalker.tariff_resync", tariff, title,
                 after={"external_id": ext, "packages": [s.external_id for s in services]})
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

