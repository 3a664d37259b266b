"""Resold services: the order (paid here, then ordered on the seller), its money-safe job,
renewal at each charged month, the 5-minute poller, and staff's restart.

Money here: our subscriber pays through the charge run. An order assigns the tariff's
catalog service to one of the contract's accounts (monthly in advance: the rest of this month
is charged at once, through the ledger, in the order's transaction); each later month is
charged by the nightly charge run, and ``renew_due`` renews the service on the seller once
per charged month (the key: ``renewed_period``). Money on the seller: before any order or
renewal the handler's balance must stay at or above its minimum after paying; otherwise the
operation waits and the handler's department gets a task.

An order call is sent at most once per attempt, after the service is marked ``ordering`` with
a snapshot of the seller's ids; if its answer is lost (timeout, an error status, a dropped
connection), the job looks for the new service on the seller and, if it cannot tell, flags the
order (``attention``) and opens a task. Nothing orders again until a person says so.

An order that could not go out (the seller unreachable, its balance unreadable or too low, the
account not active yet) stays ``pending`` with its ``wait_reason`` and is retried by itself:
``retry_due`` (every SWEEP_INTERVAL) hands each one whose ``retry_at`` has come to the worker,
with the platform syncs' backoff. Only a refusal by the seller waits for staff's restart.
"""
from __future__ import annotations

import time
from datetime import timedelta

from flask import current_app
from sqlalchemy import func, select, update

from ...billing import audit, clock, notice_events
from ...billing.blocking import can_pay_out
from ...billing.errors import BillingError
from ...billing.outbox import notify
from ...extensions import db
from ...models import AssignedService, BmHandler, BmService, BmTariff, ChargePeriod, utcnow
from ..http import PlatformError, recording
from ..reconcile import backoff
from .client import BillmgrError, BillmgrNotSent, BillmgrTransportError
from .handlers import client_for, min_balance_ok, record_calls
from .settings import load as load_settings
from .tasks import close_by_key, open_task

ORDER_JOB = "jobs.billmanager.order_service"
ORDER_REQUEUE_SECONDS = 120  # an order handed to the worker is not handed over again before this
RENEW_LOCK_SECONDS = 3600  # one renewal run per handler at a time (a run is one call per service)


# task titles by wait reason (a failed balance read is not a low balance)
WAIT_TASKS = {
    "unreachable": "Order of service #{id} waits: the seller does not answer (retried automatically)",
    "balance_unknown": "Order of service #{id} waits: the seller's balance cannot be read (retried automatically)",
    "balance_low": "Order of service #{id} waits: top up the selling account",
    "refused": "The seller refused the order of service #{id}",
}


# -- what billing wants on the seller --------------------------------------------------------

def desired(svc: BmService) -> str:
    """The one rule: ``active``, ``suspended`` or ``deleted`` on the seller."""
    if svc.state == "deleted" or svc.assigned.state == "ended":
        return "deleted"
    if svc.account.status == "active" and svc.assigned.state == "active":
        return "active"
    return "suspended"  # any block (balance, manager, subscriber), a suspension, a disabled account


def shown_state(svc: BmService) -> str:
    """What the subscriber is told: ``active`` (running here and on the seller), ``suspended``,
    ``ended``, or ``pending`` (still being set up on the seller)."""
    want = desired(svc)
    if want == "deleted":
        return "ended"
    if svc.state != "ordered":
        return "pending"
    if want == "suspended" or svc.remote_status == 3:  # 3: suspended on the seller
        return "suspended"
    return "active" if svc.remote_status == 2 else "pending"  # 1 ordered, 5 in processing


# -- placing an order -------------------------------------------------------------------------

def place_order(account, tariff: BmTariff | None, *, domain: str | None = None, actor: str,
                order_key: str | None = None) -> BmService:
    """Pay for and queue an order; the caller commits, then calls ``enqueue_order``.
    ``order_key`` (the form's one-time key) makes a repeat return the first order, moving no
    money."""
    from ...billing.accounts import lock_account
    from ...billing.charging import apply_balance_rule, charge_accounts

    if account is not None:
        # one order at a time per contract: a parallel order or double click waits here and
        # then sees the first one's money gone (or its order key taken)
        lock_account(account)
    if order_key:
        order_key = order_key[:64]
        first = db.session.scalar(select(BmService).filter_by(order_key=order_key))
        if first is not None:
            if account is None or first.account_id != account.id:
                raise BillingError({"nonce": "already used for another order"})
            return first
    errors = {}
    if tariff is None or not tariff.enabled:
        errors["tariff_id"] = "no such tariff"
    if account is None:
        errors["account_id"] = "no such account"
    elif account.status != "active":
        errors["account_id"] = "the account must be active"
    domain = (domain or "").strip().lower() or None
    if domain and (len(domain) > 200 or not all(part.replace("-", "").isalnum() for part in domain.split("."))):
        errors["domain"] = "a domain name such as example.ru"
    if not errors:
        # an order pays the seller: "do not block" lends no money for it (billing.blocking)
        if not can_pay_out(account.contract, tariff.price):
            errors["tariff_id"] = "not enough money on the contract: top it up first"
    if errors:
        raise BillingError(errors)
    today = clock.today()
    assigned = AssignedService(account=account, service_id=tariff.service_id, starts_on=today, state="active",
                               state_changed_on=today, per_order=True)  # one per order: may repeat
    db.session.add(assigned)
    db.session.flush()
    svc = BmService(tariff=tariff, account=account, assigned_service_id=assigned.id, domain=domain,
                    state="pending", created_by=actor, order_key=order_key)
    db.session.add(svc)
    db.session.flush()
    # a purchase like the cabinet's and the upsales' ("service_bought", keyed by the assigned
    # service: a repeat of the order returned above; the notice is in the order's transaction)
    notice_events.service_assigned(assigned, bought=True)
    # the rest of this month is charged now (the charge run's rules), then the balance rule
    charge_accounts([account.id], actor=actor)
    apply_balance_rule([account.contract_id], actor=actor)
    audit.record(actor, "billmanager.order", svc, f"{tariff.name} for {account.login}",
                 after={"tariff_id": tariff.id, "account_id": account.id, "domain": domain})
    notify([account.id], "billmanager.order")
    return svc


def enqueue_order(svc_id: int) -> str | None:
    """Hand the order to the worker (after commit). A Redis outage loses nothing: the poller
    picks up pending orders that wait for nobody."""
    from ...queue import get_queue

    try:
        return get_queue("high").enqueue(ORDER_JOB, svc_id, job_id=f"bm-order-{svc_id}-{int(time.time() * 1000)}",
                                         job_timeout=600).id
    except Exception:  # noqa: BLE001
        return None


def restart(svc: BmService, *, actor: str, not_ordered: bool = False) -> None:
    """Staff restart a pending order (after topping up the seller); for a flagged order they
    first confirm it did not reach the seller (``not_ordered``). The caller commits and
    enqueues."""
    if svc.state == "attention" and not not_ordered:
        raise BillingError({"state": "check the seller first, then confirm the order is not there"})
    if svc.state not in ("pending", "attention"):
        raise BillingError({"state": "only a pending or flagged order can be restarted"})
    svc.state, svc.order_snapshot, svc.last_error = "pending", None, None
    svc.wait_reason, svc.attempts, svc.retry_at = None, 0, None
    close_by_key(f"billmanager:order:{svc.id}", actor=actor)
    audit.record(actor, "billmanager.order.restart", svc, f"service {svc.id}")


# -- the order job ---------------------------------------------------------------------------

def _candidates(tariff: BmTariff) -> list[BmHandler]:
    """The enabled handlers listed on the tariff, in its priority order."""
    from .handlers import tariff_handlers

    return [h for h in tariff_handlers(tariff) if h.enabled]


def _wait(svc: BmService, reason: str, error: str, department_id: int | None, *, retry: bool = True) -> str:
    """Leave the order pending with why; schedule its retry (the platform syncs' backoff) and
    keep one open task for the department whose title says what is wrong. The caller commits."""
    svc.state, svc.order_snapshot, svc.last_error, svc.wait_reason = "pending", None, error, reason
    svc.attempts = (svc.attempts or 0) + 1
    svc.retry_at = utcnow() + timedelta(seconds=backoff(svc.attempts)) if retry else None
    if reason in WAIT_TASKS:
        key = f"billmanager:order:{svc.id}"
        title = WAIT_TASKS[reason].format(id=svc.id)
        task = open_task(key, title, department_id=department_id, body=error, object_type="bm_service",
                         object_id=svc.id)
        task.title = title  # the same order may wait for another reason now
    return "pending"


def order_service(svc_id: int) -> str:
    """Order one service on the seller; returns its state afterwards."""
    from ...queue import get_redis

    with get_redis().lock(f"portal:lock:billmanager:service:{svc_id}", timeout=900, blocking_timeout=900):
        return _order(svc_id)


def _order(svc_id: int) -> str:
    svc = db.session.get(BmService, svc_id)
    if svc is None:
        return "gone"
    if svc.state == "ordering":  # an earlier attempt's answer was lost: find out, never resend
        return _establish(svc_id)
    if svc.state != "pending":
        return svc.state
    if desired(svc) != "active":
        svc.last_error, svc.wait_reason, svc.retry_at = "waiting: the account is not active", "account", None
        db.session.commit()
        return "pending"
    tariff = svc.tariff
    cost = tariff.seller_cost(1)
    handlers = [(h.id, h.name, h.min_balance, client_for(h)) for h in _candidates(tariff)]
    department = tariff.handler.department_id
    itemtype, remote_tariff, dc, domain = tariff.itemtype, tariff.remote_id, tariff.remote_datacenter, svc.domain
    db.session.rollback()

    chosen, short, unknown = None, [], False
    with recording() as calls:
        for hid, name, minimum, client in handlers:
            try:
                balance, currency = client.balance()
            except PlatformError as e:  # unknown is not low: this handler may do once it answers
                short.append(f"{name}: the balance cannot be read: {e}")
                unknown = True
                continue
            if min_balance_ok(balance, cost, minimum):
                chosen = (hid, client)
                break
            short.append(f"{name}: balance {balance} {currency or ''}, needs {cost} + minimum {minimum}")
        snapshot = None
        if chosen:
            try:
                snapshot = [r["id"] for r in chosen[1].list(itemtype)]
            except PlatformError as e:
                short.append(f"the seller's list of services cannot be read: {e}")
                chosen, unknown = None, True
    svc = db.session.get(BmService, svc_id)
    record_calls(calls, "system", "bm_service", svc_id)
    if not chosen:
        if not handlers:
            _wait(svc, "refused", "no enabled handler sells this tariff", department, retry=False)
        else:
            _wait(svc, "balance_unknown" if unknown else "balance_low", "; ".join(short), department)
        db.session.commit()
        return "pending"
    svc.state, svc.handler_id, svc.order_snapshot, svc.order_sent_at = "ordering", chosen[0], snapshot, utcnow()
    svc.last_error = None
    db.session.commit()  # marked before the call: a crash from here on never orders twice

    refused = not_sent = None
    kind = ""
    with recording() as calls:
        try:
            chosen[1].order(itemtype, pricelist=remote_tariff, period=1, remoteid=str(svc_id), datacenter=dc,
                            domain=domain)
        except BillmgrNotSent as e:
            not_sent = str(e)  # it never reached the seller: nothing can have been spent there
        except BillmgrTransportError:
            pass  # the outcome is unknown: look, do not resend
        except BillmgrError as e:
            refused, kind = str(e), e.type
    svc = db.session.get(BmService, svc_id)
    record_calls(calls, "system", "bm_service", svc_id)
    if not_sent:
        _wait(svc, "unreachable", not_sent, department)
        db.session.commit()
        return "pending"
    if refused:  # the seller said no: nothing was ordered, nothing spent there
        # a short balance there is retried by itself; any other refusal needs a person
        _wait(svc, "balance_low" if kind == "balance" else "refused", refused, department,
              retry=kind == "balance")
        db.session.commit()
        return "pending"
    db.session.commit()
    return _establish(svc_id)


def _match(rows: list[dict], svc_id: int, snapshot: list, remote_tariff: str, domain: str | None) -> list[dict]:
    by_remoteid = [r for r in rows if str(r.get("remoteid") or "") == str(svc_id)]
    if by_remoteid:
        return by_remoteid
    new = [r for r in rows if r.get("id") not in set(snapshot or [])]
    if domain:
        new = [r for r in new if (r.get("domain") or "").lower() == domain] or new
    same_tariff = [r for r in new if str(r.get("pricelist_id") or "") == remote_tariff]
    return same_tariff or new


def _establish(svc_id: int) -> str:
    """After the order call: find the new service on the seller (for up to
    BILLMANAGER_ORDER_LOOKUP seconds); link it, or flag the order for a person."""
    svc = db.session.get(BmService, svc_id)
    handler = svc.handler
    client, itemtype = client_for(handler), svc.tariff.itemtype
    snapshot, remote_tariff, domain = svc.order_snapshot, svc.tariff.remote_id, svc.domain
    department = handler.department_id
    db.session.rollback()
    deadline = time.monotonic() + load_settings(current_app.config).order_lookup
    found, error = [], None
    with recording() as calls:
        while True:
            try:
                found = _match(client.list(itemtype), svc_id, snapshot, remote_tariff, domain)
                error = None
            except PlatformError as e:
                error = str(e)
            if found or time.monotonic() > deadline:
                break
            time.sleep(1)
    svc = db.session.get(BmService, svc_id)
    record_calls(calls, "system", "bm_service", svc_id)
    if len(found) == 1:
        _apply_row(svc, found[0])
        svc.state, svc.order_snapshot, svc.last_error = "ordered", None, None
        svc.wait_reason, svc.attempts, svc.retry_at = None, 0, None
        svc.renewed_period = clock.month_start(clock.today())  # the order paid the seller's first month
        close_by_key(f"billmanager:order:{svc_id}")
        audit.record("system", "billmanager.ordered", svc, f"service {svc_id} is {found[0]['id']} on the seller")
        db.session.commit()
        notify([svc.account_id], "billmanager.ordered")  # a block that came meanwhile reaches the seller
        db.session.commit()
        return "ordered"
    svc.state = "attention"
    svc.last_error = (f"the order's outcome is unknown ({error or 'no new service found on the seller'})"
                      if not found else f"{len(found)} new services on the seller could be this order")
    open_task(f"billmanager:order:{svc_id}", f"Check the order of service #{svc_id} on the seller",
              department_id=department, body=svc.last_error, object_type="bm_service", object_id=svc_id)
    db.session.commit()
    return "attention"


def _apply_row(svc: BmService, row: dict) -> None:
    from datetime import date

    svc.remote_id = str(row["id"])
    try:
        svc.remote_status = int(row.get("item_status"))
    except (TypeError, ValueError):
        svc.remote_status = None
    svc.remote_status_msg = (row.get("status_msg") or "")[:300] or None
    try:
        svc.remote_expires = date.fromisoformat(str(row.get("expiredate"))[:10])
    except ValueError:
        pass
    svc.remote_params = {k: row[k] for k in ("domain", "ip", "datacentername", "cost") if row.get(k)}
    svc.last_seen_at = utcnow()


# -- renewal ---------------------------------------------------------------------------------

def renew_due(day=None) -> dict:
    """After the charge run: renew on the seller each service whose month we have charged and
    not renewed yet (once per month; a short seller balance waits with a task). Per handler:
    one balance read and one list read, then one ``service.prolong`` per service."""
    day = day or clock.today()
    month = clock.month_start(day)
    rows = db.session.execute(
        select(BmService.handler_id, BmService.id)
        .join(AssignedService, AssignedService.id == BmService.assigned_service_id)
        .join(ChargePeriod, (ChargePeriod.assigned_service_id == BmService.assigned_service_id)
              & (ChargePeriod.period_start == month))
        .where(BmService.state == "ordered", BmService.remote_id.is_not(None), AssignedService.state == "active",
               ChargePeriod.amount > 0,
               (BmService.renewed_period.is_(None)) | (BmService.renewed_period < month))
        .order_by(BmService.handler_id, BmService.id)).all()
    db.session.rollback()
    by_handler: dict[int, list[int]] = {}
    for handler_id, svc_id in rows:
        by_handler.setdefault(handler_id, []).append(svc_id)
    out = {"renewed": 0, "waiting": 0, "unknown": 0}
    for handler_id, ids in by_handler.items():
        for outcome, n in _renew_locked(handler_id, ids, month).items():
            out[outcome] += n
    return out


def _renew_locked(handler_id: int, ids: list[int], month) -> dict:
    """One renewal run per handler at a time (the nightly job, the CLI and staff's button may
    overlap): the second waits, then finds the month renewed (``_renew_batch`` re-reads it)."""
    from ...queue import get_redis

    with get_redis().lock(f"portal:lock:billmanager:renew:{handler_id}", timeout=RENEW_LOCK_SECONDS,
                          blocking_timeout=RENEW_LOCK_SECONDS):
        return _renew_batch(handler_id, ids, month)


def _renew_batch(handler_id: int, ids: list[int], month) -> dict:
    from ...models import BmService as S

    handler = db.session.get(BmHandler, handler_id)
    client, minimum, department = client_for(handler), handler.min_balance, handler.department_id
    todo = []
    for svc in db.session.scalars(select(S).where(S.id.in_(ids)).order_by(S.id)):
        if desired(svc) == "active" and (svc.renewed_period is None or svc.renewed_period < month):
            todo.append((svc.id, svc.remote_id, svc.tariff.itemtype, svc.tariff.seller_cost(1)))
    db.session.rollback()
    results: dict[int, tuple[str, str | None, dict | None]] = {}
    with recording() as calls:
        try:
            balance, currency = client.balance()
            listed = {}
            for itemtype in sorted({t for _, _, t, _ in todo}):
                listed.update({str(r["id"]): r for r in client.list(itemtype)})
        except PlatformError as e:
            for svc_id, *_ in todo:
                results[svc_id] = ("waiting", str(e), None)
            todo = []
        for svc_id, remote_id, itemtype, cost in todo:
            before = listed.get(remote_id) or {}
            if not min_balance_ok(balance, cost, minimum):
                results[svc_id] = ("waiting", f"balance {balance} {currency or ''}, needs {cost} + minimum {minimum}",
                                   None)
                continue
            try:
                client.prolong(remote_id, 1)
            except BillmgrTransportError:  # did it renew? the expiry says; never resend
                try:
                    after = next((r for r in client.list(itemtype) if str(r["id"]) == remote_id), {})
                except PlatformError:
                    after = before
                if after.get("expiredate") == before.get("expiredate"):
                    results[svc_id] = ("unknown", "the renewal's outcome is unknown: check the seller", after)
                else:
                    balance -= cost
                    results[svc_id] = ("renewed", None, after)
            except PlatformError as e:
                results[svc_id] = ("waiting", str(e), None)
            else:
                balance -= cost
                row = dict(before)
                if before.get("expiredate"):  # what the seller now has; the poller confirms
                    row["expiredate"] = _plus_month(before["expiredate"])
                results[svc_id] = ("renewed", None, row or None)
    record_calls(calls, "system", "bm_handler", handler_id)
    counts = {"renewed": 0, "waiting": 0, "unknown": 0}
    for svc_id, (outcome, message, row) in results.items():
        svc = db.session.get(BmService, svc_id)
        key = f"billmanager:renew:{svc_id}"
        if row:
            _apply_row(svc, row)
        if outcome in ("renewed", "unknown"):
            svc.renewed_period = month  # an unknown outcome is not retried blindly: a person checks
        svc.last_error = message
        if message:
            open_task(key, f"Renewal of service #{svc_id} on the seller", department_id=department, body=message,
                      object_type="bm_service", object_id=svc_id)
        else:
            close_by_key(key)
            audit.record("system", "billmanager.renewed", svc, f"service {svc_id} renewed for {month:%Y-%m}")
        counts[outcome] += 1
    db.session.commit()
    return counts


def _plus_month(iso: str) -> str:
    """The seller's expiry one month later (the same day, or the month's last)."""
    import calendar
    from datetime import date

    d = date.fromisoformat(str(iso)[:10])
    year, month = d.year + d.month // 12, d.month % 12 + 1
    return d.replace(year=year, month=month, day=min(d.day, calendar.monthrange(year, month)[1])).isoformat()


# -- the poller (our checkevent) ----------------------------------------------------------------

def poll() -> dict:
    """Every 5 minutes: read each handler's services and update status, expiry and
    parameters here. A service deleted there while it should live here opens a task; it is not
    copied silently. Pending orders that are due are handed to the worker (``retry_due``)."""
    groups = db.session.execute(
        select(BmService.handler_id, func.count()).where(BmService.remote_id.is_not(None),
                                                         BmService.state.in_(("ordered",)))
        .group_by(BmService.handler_id)).all()
    db.session.rollback()
    out = {"handlers": 0, "updated": 0, "deleted_there": 0, "failed": 0}
    for handler_id, _n in groups:
        result = _poll_handler(handler_id)
        for k, v in result.items():
            out[k] = out.get(k, 0) + v
        out["handlers"] += 1
    out["orders_retried"] = retry_due()
    return out


def retry_due() -> int:
    """Every SWEEP_INTERVAL (and with the poller): hand the worker each pending order that
    waits for nothing a person must do and is due: its retry time has come, its account is
    active again, or its job never reached Redis (none a minute after it was placed). A refusal
    waits for staff's restart. An order left ``ordering`` by a job that died is handed over
    too: its job looks, never resends. Each one handed over is not handed over again for
    ORDER_REQUEUE_SECONDS (its job sets the next time itself), so a busy queue does not
    collect copies; a second job would be harmless anyway (the order's lock, its state
    re-read). Returns how many were enqueued."""
    now = utcnow()
    S = BmService
    rows = db.session.execute(select(S.id, S.wait_reason).where(
        S.state == "pending", (S.wait_reason.is_(None)) | (S.wait_reason != "refused"),
        (S.retry_at <= now) | (S.retry_at.is_(None) & (
            S.wait_reason.is_not(None) | (S.created_at < now - timedelta(minutes=1)))))).all()
    # an order call that went out from a job that died before it learnt the outcome: its
    # job only looks on the seller (never resends) and links the service or flags the order
    settings = load_settings(current_app.config)
    lost = now - timedelta(seconds=settings.order_timeout + settings.order_lookup + 60)
    rows += db.session.execute(select(S.id, S.wait_reason).where(
        S.state == "ordering", S.order_sent_at < lost, S.retry_at.is_(None) | (S.retry_at <= now))).all()
    due = []
    for svc_id, reason in rows:
        if reason == "account" and desired(db.session.get(BmService, svc_id)) != "active":
            continue  # still waiting for its account: no job for nothing
        due.append(svc_id)
    if due:
        db.session.execute(update(S).where(S.id.in_(due), S.state.in_(("pending", "ordering")))
                           .values(retry_at=now + timedelta(seconds=ORDER_REQUEUE_SECONDS)))
    db.session.commit()
    for svc_id in due:
        enqueue_order(svc_id)
    return len(due)


def _poll_handler(handler_id: int) -> dict:
    handler = db.session.get(BmHandler, handler_id)
    itemtypes = sorted(set(db.session.scalars(select(BmTariff.itemtype).join(
        BmService, BmService.tariff_id == BmTariff.id).where(BmService.handler_id == handler_id))))
    client = client_for(handler)
    db.session.rollback()
    rows, error = {}, None
    with recording() as calls:
        try:
            for itemtype in itemtypes:
                rows.update({str(r["id"]): r for r in client.list(itemtype)})
        except PlatformError as e:
            error = str(e)
    record_calls(calls, "system", "bm_handler", handler_id)
    out = {"updated": 0, "deleted_there": 0, "failed": 0}
    if error:
        db.session.get(BmHandler, handler_id).last_error = error
        db.session.commit()
        out["failed"] = 1
        return out
    for svc in db.session.scalars(select(BmService).where(BmService.handler_id == handler_id,
                                                           BmService.state == "ordered")):
        row = rows.get(svc.remote_id)
        if row is not None:
            _apply_row(svc, row)
            out["updated"] += 1
        if row is None or svc.remote_status == 4:
            if desired(svc) == "deleted":
                svc.state = "deleted"
                continue
            svc.remote_status = 4
            svc.last_error = "deleted on the seller while active here"
            out["deleted_there"] += 1
            open_task(f"billmanager:deleted-there:{svc.id}", f"Service #{svc.id} was deleted on the seller",
                      department_id=handler.department_id, object_type="bm_service", object_id=svc.id,
                      body=f"Seller's service {svc.remote_id} is gone; ours is still {desired(svc)}.")
    db.session.commit()
    return out
