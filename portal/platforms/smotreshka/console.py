"""What staff start from the «Смотрёшка» page (as jobs; the web never calls the platform):
the catalog import, the connection check, the drift report with its fix actions, and the
scheduled re-sync. Each platform call is audited like the reconcile's (actor
``platform:smotreshka``)."""
from __future__ import annotations

from contextlib import contextmanager

from sqlalchemy import delete, select

from ...billing import accounts as acc
from ...billing import audit, outbox
from ...billing.errors import BillingError
from ...extensions import db
from ...models import Account, CatalogService, SmotreshkaDrift, SyncState, utcnow
from .. import connections, reconcile
from ..http import PlatformError, audit_calls, recording
from .client import SmotreshkaClient
from .settings import load as load_settings
from .sync import NAME, tv_services, wanted_subscriptions

UPSALE_PATHS = ("add-subscription/ensure", "add-subscription/commit",
                "replace-subscription/ensure", "replace-subscription/commit")


@contextmanager
def _client(actor: str):
    """A client on the stored connection; the calls made in the block go to the audit log."""
    connection = connections.load(NAME)
    db.session.rollback()  # no transaction stays open during a network call
    if connection is None:
        raise PlatformError("no enabled connection for «Смотрёшка» (Platform connections)")
    with recording() as calls:
        try:
            yield SmotreshkaClient(connection)
        finally:
            audit_calls(calls, actor, "platform")
            db.session.commit()


def upsale_urls(base: str) -> list[str]:
    base = base.rstrip("/")
    return [f"{base}/upsale/v3/{p}" for p in UPSALE_PATHS]


# -- catalog import -----------------------------------------------------------------------------

def import_catalog(actor: str) -> str:
    """Bind a catalog service to every platform subscription (by external id): new ones are
    created with price 0 and no kind (staff set both), known ones get the platform's name."""
    with _client(actor) as client:
        items = client.subscriptions_catalog()
    created = renamed = 0
    for item in items:
        service = db.session.scalar(select(CatalogService).filter_by(platform=NAME, external_id=item["id"]))
        if service is None:
            db.session.add(CatalogService(name=item["name"][:200], price=0, platform=NAME, external_id=item["id"],
                                          charge_period="month", charge_mode="monthly_advance"))
            created += 1
        elif service.name != item["name"][:200]:
            service.name = item["name"][:200]
            renamed += 1
    audit.record(actor, "smotreshka.import", None, f"catalog: {len(items)} subscriptions, {created} new",
                 after={"ids": [i["id"] for i in items], "created": created, "renamed": renamed},
                 object_type="platform", object_id=None)
    db.session.commit()
    return f"{len(items)} subscriptions: {created} new, {renamed} renamed"


# -- the check ------------------------------------------------------------------------------------

def check(actor: str, public_base: str) -> dict:
    """Call the platform and say what works: reachable, our address accepted, the catalog
    readable; and the upsale URLs as the platform must be told them."""
    settings = load_settings()
    report = {"reachable": False, "address_accepted": False, "catalog": None, "error": None,
              "upsale_urls": upsale_urls(settings.public_url or public_base),
              "allowed_ips": [str(n) for n in settings.allowed_ips]}
    try:
        with _client(actor) as client:
            try:
                items = client.subscriptions_catalog()
                report.update(reachable=True, address_accepted=True, catalog=len(items))
            except PlatformError as e:
                text = str(e)
                report["error"] = text[:300]
                if text.startswith("HTTP "):
                    report["reachable"] = True
                    report["address_accepted"] = not text.startswith("HTTP 403")
    except PlatformError as e:
        report["error"] = str(e)
    audit.record(actor, "smotreshka.check", None, "reachable" if report["reachable"] else "unreachable",
                 after=report, object_type="platform", object_id=None)
    db.session.commit()
    return report


def last_check() -> dict | None:
    from ...models import AuditEntry

    entry = db.session.scalar(select(AuditEntry).filter_by(action="smotreshka.check").order_by(AuditEntry.id.desc())
                              .limit(1))
    return {"at": entry.at, "actor": entry.actor, **(entry.after or {})} if entry else None


# -- drift ---------------------------------------------------------------------------------------

def _linked_accounts(account_id: int | None) -> list[Account]:
    pairs = outbox.platforms_query([account_id] if account_id else select(Account.id))
    ids = list(db.session.scalars(select(pairs.c.account_id).where(pairs.c.platform == NAME)))
    return [db.session.get(Account, i) for i in sorted(ids)]


def drift_report(actor: str, account_id: int | None = None) -> str:
    """Billing's view beside the platform's, per account (or for all), each difference stored
    as a row with its fix; platform accounts billing does not know are listed, never deleted."""
    settings = load_settings()
    accounts = _linked_accounts(account_id)
    wanted = {}
    for a in accounts:
        st = db.session.scalar(select(SyncState).filter_by(account_id=a.id, platform=NAME))
        wanted[a.id] = {"login": a.login, "username": settings.username(a.login),
                        "id": (st.actual or {}).get("id") if st and st.actual else None,
                        "present": a.status != "disabled",
                        "subs": set(wanted_subscriptions(a, settings))}
    rows = []
    with _client(actor) as client:
        platform_accounts = client.all_accounts() if account_id is None else []
        by_username = {p.get("username"): p for p in platform_accounts}
        for aid, w in wanted.items():
            found = by_username.get(w["username"]) if account_id is None else \
                client.account(client._ref(w["id"], w["username"])) if (w["id"] or settings.id_mode == "username") \
                else next((p for p in client.all_accounts() if p.get("username") == w["username"]), None)
            if found is None:
                if w["present"]:
                    rows.append(dict(account_id=aid, kind="account_missing", username=w["username"],
                                     billing=sorted(w["subs"]), platform=None))
                continue
            pid = str(found.get("id"))
            have = {str(s.get("id")) for s in found.get("subscriptions") or []} if "subscriptions" in found \
                else client.subscriptions(client._ref(pid, w["username"]))
            for ext in sorted(w["subs"] - have):
                rows.append(dict(account_id=aid, kind="missing_on_platform", username=w["username"], platform_id=pid,
                                 external_id=ext, billing=sorted(w["subs"]), platform=sorted(have)))
            for ext in sorted(have - w["subs"]):
                rows.append(dict(account_id=aid, kind="extra_on_platform", username=w["username"], platform_id=pid,
                                 external_id=ext, billing=sorted(w["subs"]), platform=sorted(have)))
    if account_id is None:
        ours = {w["username"] for w in wanted.values()}
        for p in platform_accounts:
            if p.get("username") not in ours:
                rows.append(dict(account_id=None, kind="orphan", username=p.get("username"),
                                 platform_id=str(p.get("id")),
                                 platform=sorted(str(s.get("id")) for s in p.get("subscriptions") or [])))
        db.session.execute(delete(SmotreshkaDrift))
    else:
        db.session.execute(delete(SmotreshkaDrift).where(SmotreshkaDrift.account_id == account_id))
    now = utcnow()
    db.session.add_all([SmotreshkaDrift(found_at=now, **r) for r in rows])
    audit.record(actor, "smotreshka.drift", None, f"drift: {len(rows)} difference(s) over {len(wanted)} account(s)",
                 object_type="account" if account_id else "platform", object_id=account_id)
    db.session.commit()
    return f"{len(wanted)} account(s) compared, {len(rows)} difference(s)"


def push(account_id: int, actor: str) -> None:
    """Fix by pushing billing's state: a staff request, so the reconcile reads the platform and
    undoes what changed there (the caller commits; the outbox enqueues the reconcile)."""
    outbox.add_events([(account_id, NAME)], "sync.request")
    audit.record(actor, "smotreshka.push", None, "push billing's TV state", object_type="account",
                 object_id=account_id)


def accept(drift: SmotreshkaDrift, actor: str):
    """Fix by accepting the platform's subscription into billing: the account gets the catalog
    service bound to it (charged as any assignment). The caller commits."""
    from . import tv

    if drift.kind != "extra_on_platform" or drift.account_id is None:
        raise BillingError({"drift": "only a subscription the platform has and billing does not can be accepted"})
    service = tv.by_external_id(drift.external_id)
    if service is None:
        raise BillingError({"external_id": "no catalog service is bound to this subscription (import the catalog)"})
    account = db.session.get(Account, drift.account_id)
    assigned = tv.change(account, add=service, remove=None, actor=actor)
    forget(drift)
    return assigned


def forget(drift: SmotreshkaDrift) -> None:
    """The fixed difference leaves the report (a reconcile pass may have replaced it already)."""
    db.session.execute(delete(SmotreshkaDrift).where(SmotreshkaDrift.id == drift.id))
    db.session.expunge(drift)


def end_in_billing(drift: SmotreshkaDrift, actor: str) -> int:
    """Fix by taking the platform's state into billing where billing has more: end the TV
    service the platform does not have (every TV service for an account missing there),
    refunded as the charging rules say. Returns how many ended; the caller commits."""
    if drift.kind not in ("missing_on_platform", "account_missing") or drift.account_id is None:
        raise BillingError({"drift": "only a subscription billing has and the platform does not can be ended"})
    account = db.session.get(Account, drift.account_id)
    acc.lock_account(account)  # a second click waits, then finds the services ended already
    ending = [s for s in tv_services(account)
              if drift.kind == "account_missing" or s.service.external_id == drift.external_id]
    if not ending:
        raise BillingError({"drift": "billing holds no such TV service any more"})
    for service in ending:
        acc.end_service(service, actor=actor)
    forget(drift)
    return len(ending)


# -- scheduled re-sync ----------------------------------------------------------------------------

def scheduled_resync() -> int:
    """Reconcile every account on the platform against what it really has (each pass reads
    it; what changed on the platform's side goes by the ``platform_changes`` option), on the
    low queue; each pass lists what it left in the drift report."""
    return reconcile.reconcile_all(platforms={NAME})


def self_service_enabled() -> bool:
    row_settings = load_settings()
    conn_enabled = connections.load(NAME) is not None
    return conn_enabled and row_settings.self_service
