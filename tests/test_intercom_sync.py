"""«Интерсвязь»: the seed's rules, end to end: billing changes, the real RQ worker reconciles
over HTTP against the emulator, and the emulator's profiles show the result."""
from __future__ import annotations

import json
import threading
from datetime import date

from sqlalchemy import select

from portal.billing import accounts as acc
from portal.billing import ledger
from portal.billing.charging import charge
from portal.billing.errors import BillingError
from portal.extensions import db
from portal.models import Account, AuditEntry, IntercomProfile, OutboxEvent, SyncState
from portal.platforms import reconcile
from portal.platforms.connections import save_connection
from tests.intercom_fixtures import TOKEN, settled
from tests.platform_fixtures import wait_for

FULL = "full"
LIMITED = "limited"
ABSENT = "absent"


def test_an_activated_flat_with_the_service_creates_its_profile_from_the_subscriber_card(worker):
    """An account with an isvyaz_login, activated with the intercom service: is the profile
    created with the subscriber's name and phones, and the flat on it with full access?"""
    a = worker.flat(login="ivanov.ii", house="ул. Ленина, 5", flat="12")
    settled(a)
    p = worker.profile("ivanov.ii")
    assert (p["full_name"], p["phones"]) == ("Иванов Иван Иванович", ["+7 900 111-22-33"])
    assert p["addresses"][str(a.id)]["house_id"] == "ул. Ленина, 5" and p["addresses"][str(a.id)]["flat"] == "12"
    assert worker.level("ivanov.ii", a) == FULL
    assert db.session.scalar(select(IntercomProfile.created_by_us).filter_by(login="ivanov.ii")) is True


def test_an_existing_profile_is_linked_not_created(worker):
    """If the platform has the profile already, is the flat added to it (no second profile
    created), and its name and phones brought to the subscriber card (the default for linked
    profiles)?"""
    worker.emulator.add_profile("petrova", "Петрова Мария (на платформе)", ["+7 911 000-00-00"])
    a = worker.flat(login="petrova", contract=worker.contract(full_name="Петрова Мария Ивановна",
                                                               phones=("+7 911 222-33-44",)))
    settled(a)
    p = worker.profile("petrova")
    assert list(p["addresses"]) == [str(a.id)]
    assert (p["full_name"], p["phones"]) == ("Петрова Мария Ивановна", ["+7 911 222-33-44"])
    assert ("POST", "/api/v1/profiles", 201) not in worker.emulator.requests
    assert db.session.scalar(select(IntercomProfile.created_by_us).filter_by(login="petrova")) is False


def test_a_linked_profile_keeps_its_card_when_the_connection_says_so(worker):
    """With ``push_linked_profiles`` off, does a linked profile keep the platform's name?"""
    save_connection("intercom", url=worker.emulator.url, options={"push_linked_profiles": "0"}, actor="test")
    db.session.commit()
    worker.emulator.add_profile("petrova2", "Петрова Мария (на платформе)", ["+7 911 000-00-00"])
    a = worker.flat(login="petrova2")
    settled(a)
    p = worker.profile("petrova2")
    assert list(p["addresses"]) == [str(a.id)]
    assert (p["full_name"], p["phones"]) == ("Петрова Мария (на платформе)", ["+7 911 000-00-00"])
    assert not [r for r in worker.emulator.requests if r[0] == "PATCH"]


def test_nothing_reaches_the_platform_before_activation_or_without_the_service(worker):
    """An account not activated yet, or active without the intercom service: no profile?"""
    a = worker.flat(login="waiting", activate=False)
    b = worker.flat(login="noservice", service=False)
    settled(a, b)
    assert worker.profile("waiting") is None and worker.profile("noservice") is None


def test_two_flats_of_one_client_are_one_profile_with_two_addresses_each_with_its_own_access(worker):
    """Two accounts (flats) with one isvyaz_login: one profile with both addresses; blocking
    one flat limits only that address, and unblocking gives it full access back."""
    contract = worker.contract()
    one = worker.flat(contract=contract, login="family", flat="1")
    two = worker.flat(contract=contract, login="family", flat="2")
    settled(one, two)
    assert sorted(worker.profile("family")["addresses"]) == sorted([str(one.id), str(two.id)])

    acc.block(db.session.get(Account, two.id), "manager", actor="test")
    db.session.commit()
    settled(one, two)
    assert (worker.level("family", one), worker.level("family", two)) == (FULL, LIMITED)
    access = worker.profile("family")["addresses"][str(two.id)]["access"]
    assert access["open_key"] and not any(access[k] for k in ("calls_analog", "calls_sip_app", "open_app",
                                                               "video_live", "video_archive"))

    acc.unblock(db.session.get(Account, two.id), "manager", actor="test")
    db.session.commit()
    settled(one, two)
    assert (worker.level("family", one), worker.level("family", two)) == (FULL, FULL)


def test_a_subscribers_own_block_limits_access_too(worker):
    """The subscriber blocks the account from the cabinet: limited, like any block."""
    a = worker.flat(login="selfblock")
    settled(a)
    acc.block(db.session.get(Account, a.id), "subscriber", actor="test")
    db.session.commit()
    settled(a)
    assert worker.level("selfblock", a) == LIMITED


def test_disabling_removes_the_address_and_deletes_a_profile_we_created_once_empty(worker):
    """Disable one of two flats: its address goes, the profile stays; disable the other:
    the profile we created is deleted."""
    contract = worker.contract()
    one = worker.flat(contract=contract, login="leaving", flat="1")
    two = worker.flat(contract=contract, login="leaving", flat="2")
    settled(one, two)
    acc.disable(db.session.get(Account, one.id), actor="test")
    db.session.commit()
    settled(one)
    assert list(worker.profile("leaving")["addresses"]) == [str(two.id)]
    acc.disable(db.session.get(Account, two.id), actor="test")
    db.session.commit()
    settled(two)
    assert worker.profile("leaving") is None
    assert db.session.scalar(select(IntercomProfile).filter_by(login="leaving")) is None


def test_a_linked_profile_is_left_alone_when_our_last_address_leaves(worker):
    """A profile we only linked: our address goes, the profile (and its other flats) stays."""
    worker.emulator.add_profile("foreign", "Чужой профиль", [], {
        "77": {"house_id": "ул. Другая, 1", "flat": "9", "access": {k: True for k in (
            "open_key", "open_code", "open_app", "open_face", "calls_analog", "calls_sip_app", "calls_landline",
            "video_live", "video_archive")}}})
    a = worker.flat(login="foreign")
    settled(a)
    acc.disable(db.session.get(Account, a.id), actor="test")
    db.session.commit()
    settled(a)
    assert list(worker.profile("foreign")["addresses"]) == ["77"]


def test_ending_the_intercom_service_removes_the_address(worker):
    """The intercom service ends (the account stays active): the address is removed."""
    a = worker.flat(login="ending")
    settled(a)
    [assigned] = [s for s in db.session.get(Account, a.id).services if s.service.platform == "intercom"]
    acc.end_service(assigned, actor="test")
    db.session.commit()
    settled(a)
    assert worker.profile("ending") is None  # created by us and now empty


def test_changing_the_login_moves_the_address_and_changing_the_flat_moves_it_within(worker):
    """isvyaz_login changed: the address leaves the old profile for the new one; the flat
    changed: the same address entry now says the new flat."""
    contract = worker.contract()
    stay = worker.flat(contract=contract, login="oldlogin", flat="1")
    moving = worker.flat(contract=contract, login="oldlogin", flat="2")
    settled(stay, moving)
    acc.update_account(db.session.get(Account, moving.id), {"extra": {"isvyaz_login": "newlogin"}}, actor="test")
    db.session.commit()
    settled(moving)
    assert list(worker.profile("oldlogin")["addresses"]) == [str(stay.id)]
    assert list(worker.profile("newlogin")["addresses"]) == [str(moving.id)]
    assert worker.profile("newlogin")["full_name"] == "Иванов Иван Иванович"

    acc.update_account(db.session.get(Account, moving.id), {"flat": "22", "house": "ул. Новая, 3"}, actor="test")
    db.session.commit()
    settled(moving)
    address = worker.profile("newlogin")["addresses"][str(moving.id)]
    assert (address["house_id"], address["flat"]) == ("ул. Новая, 3", "22")
    assert len(worker.profile("newlogin")["addresses"]) == 1


def test_a_balance_block_from_the_charge_run_limits_and_the_payment_restores_full(worker):
    """The monthly intercom charge runs like any service; not enough money: the charge run's
    balance block makes access limited, and the payment that lifts it restores full."""
    contract = worker.contract(money="0")
    a = worker.flat(contract=contract, login="debtor")
    settled(a)
    db.session.rollback()
    assert db.session.get(Account, a.id).reasons == ["balance"]  # 60 ₽ charged on activation, 0 on hand
    assert worker.level("debtor", a) == LIMITED
    charges = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "platform.call")).all()
    assert charges  # every platform call is in the audit log

    debt = -db.session.get(type(contract), contract.id).balance
    assert debt > 0
    ledger.payment(contract.id, debt, actor="test", external_id="pay-debtor")
    db.session.commit()
    settled(a)
    assert db.session.get(Account, a.id).status == "active"
    assert worker.level("debtor", a) == FULL

    # a later month: the charge run takes 60 ₽ from a zero balance and blocks again
    charge(date(2030, 1, 1), actor="test")
    db.session.commit()
    settled(a)
    assert db.session.get(Account, a.id).reasons == ["balance"] and worker.level("debtor", a) == LIMITED


def _one_in_the_platform_at_a_time(app, emulator, path_prefix):
    """The two jobs just enqueued meet: the first one's call to the profile is held at the
    emulator's door while the second job starts on the other worker; the second must not reach
    the platform meanwhile (it waits for the profile's lock). Then the door opens."""
    from rq.registry import StartedJobRegistry

    from portal.queue import get_redis

    gate = emulator.hold(path_prefix)
    try:
        assert gate.wait_arrivals(1, timeout=30), "no sync reached the platform"

        def both_running():
            return sum(StartedJobRegistry(q, connection=get_redis()).count for q in app.config["RQ_QUEUES"]) >= 2

        wait_for(both_running, what="both jobs to be running, one on each worker")
        # the first job is inside the platform and the second is running: without the profile
        # lock it would come to the door too (a read of a profile that does not exist yet)
        assert not gate.wait_arrivals(2, timeout=2), f"both jobs in the platform at once: {gate.arrived}"
    finally:
        gate.open()
        emulator.gates.remove(gate)


def test_two_accounts_of_one_profile_changing_at_once_never_race(app, worker, processes):
    """Two workers sync two new flats of one new login at the same moment, the first one held
    inside the platform by the test until the second is running: one profile is created, once,
    with both addresses; then both flats are disabled at once, the same way: the profile is
    deleted, once, and no sync fails."""
    from rq import Worker

    from portal.queue import get_redis

    processes.start("jobs.worker")  # a second worker
    wait_for(lambda: Worker.count(connection=get_redis()) >= 2, what="two workers listening")
    contract = worker.contract()
    one = worker.flat(contract=contract, login="shared", flat="1", activate=False)
    two = worker.flat(contract=contract, login="shared", flat="2", activate=False)
    for a in (one, two):
        acc.activate(db.session.get(Account, a.id), actor="test")
    db.session.commit()  # both outbox rows in one commit: two jobs, two workers, one profile
    _one_in_the_platform_at_a_time(app, worker.emulator, "/api/v1/profiles")
    states = settled(one, two)
    assert all(s["error"] is None for s in states.values())
    assert sorted(worker.profile("shared")["addresses"]) == sorted([str(one.id), str(two.id)])
    creates = [r for r in worker.emulator.requests if r[:2] == ("POST", "/api/v1/profiles")]
    assert creates == [("POST", "/api/v1/profiles", 201)]

    for a in (one, two):
        acc.disable(db.session.get(Account, a.id), actor="test")
    db.session.commit()
    _one_in_the_platform_at_a_time(app, worker.emulator, "/api/v1/profiles/shared")
    states = settled(one, two)
    assert worker.profile("shared") is None
    deletes = [r for r in worker.emulator.requests if r[:2] == ("DELETE", "/api/v1/profiles/shared")]
    assert deletes == [("DELETE", "/api/v1/profiles/shared", 204)]
    assert db.session.scalar(select(SyncState).where(SyncState.attempts > 0)) is None


def test_the_platform_down_while_a_block_happens_loses_nothing(worker, processes):
    """The platform is down when the account is blocked: billing blocks at once, the sync
    retries with the error shown, and once the platform is back the flat is limited."""
    processes.start("jobs.scheduler", SWEEP_INTERVAL=1)  # the sweeper enqueues due retries
    a = worker.flat(login="outage")
    settled(a)
    worker.emulator.down()
    acc.block(db.session.get(Account, a.id), "manager", actor="test")
    db.session.commit()
    assert db.session.get(Account, a.id).status == "blocked"

    def failing():
        st = db.session.scalar(select(SyncState).filter_by(account_id=a.id, platform="intercom"))
        return st if st.state == "retry" and st.last_error else None

    st = wait_for(failing, what="the sync to fail and wait for a retry")
    assert "Connection" in st.last_error or "refused" in st.last_error
    worker.emulator.up()
    settled(a, timeout=40)
    assert worker.level("outage", a) == LIMITED


def test_a_refusal_is_retried_and_the_api_key_never_shows(worker):
    """The platform answers 503 twice: the sync retries and succeeds; the API key is in no
    audit entry, sync state or error."""
    worker.emulator.fail("maintenance", status=503, times=2)
    a = worker.flat(login="flaky")
    a_id = a.id
    db.session.commit()
    reconcile.reconcile_account("intercom", a_id)  # fails once here, so the error is kept
    st = db.session.scalar(select(SyncState).filter_by(account_id=a_id))
    assert st.state in ("retry", "ok")
    from portal.platforms import outbox

    wait_for(lambda: outbox.sweep() and db.session.scalar(
        select(SyncState.state).filter_by(account_id=a_id)) == "ok", timeout=30, what="the retry to succeed")
    assert worker.level("flaky", a) == FULL
    texts = json.dumps([[e.summary, e.before, e.after] for e in db.session.scalars(select(AuditEntry))])
    texts += json.dumps([[s.desired, s.actual, s.last_error] for s in db.session.scalars(select(SyncState))])
    assert TOKEN not in texts and "maintenance" in texts


def test_drift_on_the_platform_is_found_and_repaired(worker):
    """Someone changes the platform behind our back (a blocked flat given full access, a
    flat removed): the drift check queues those accounts and the sync repairs them."""
    from jobs.intercom import check_profiles

    contract = worker.contract()
    blocked = worker.flat(contract=contract, login="drifty", flat="1")
    removed = worker.flat(contract=contract, login="drifty", flat="2")
    acc.block(db.session.get(Account, blocked.id), "manager", actor="test")
    db.session.commit()
    settled(blocked, removed)
    profile = worker.profile("drifty")
    profile["addresses"][str(blocked.id)]["access"] = {k: True for k in profile["addresses"][str(blocked.id)]["access"]}
    del profile["addresses"][str(removed.id)]

    result = check_profiles()
    assert result == {"profiles": 1, "missing": 0, "drifted_accounts": 2}
    settled(blocked, removed)
    assert (worker.level("drifty", blocked), worker.level("drifty", removed)) == (LIMITED, FULL)


def test_a_bad_login_is_refused_naming_the_field_and_nothing_is_written(intercom):
    """An isvyaz_login that does not match the field's pattern: a clear error on that field,
    no account, no outbox row, no platform call."""
    contract = intercom.contract()
    try:
        acc.create_account({"contract_id": contract.id, "login": "bad1", "agent_id": intercom.agent.id,
                            "tariff_id": intercom.tariff.id, "extra": {"isvyaz_login": "no spaces!"}}, actor="test")
    except BillingError as e:
        assert "extra.isvyaz_login" in e.fields
    else:
        raise AssertionError("accepted a bad isvyaz_login")
    db.session.rollback()
    assert db.session.scalar(select(Account).filter_by(login="bad1")) is None
    assert db.session.scalar(select(OutboxEvent)) is None
    assert intercom.emulator.requests == []


def test_two_syncs_of_one_profile_in_threads_do_not_lose_an_address(intercom, app):
    """The same without RQ: two threads reconcile two flats of one new login at once, the
    platform slow; both addresses end on the one profile."""
    intercom.emulator.latency = 0.1
    contract = intercom.contract()
    ids = [intercom.flat(contract=contract, login="threads", flat=str(n)).id for n in (1, 2)]
    db.session.commit()
    results = {}

    def run(account_id):
        with app.app_context():
            results[account_id] = reconcile.reconcile_account("intercom", account_id)

    threads = [threading.Thread(target=run, args=(i,)) for i in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == {i: "ok" for i in ids}
    assert sorted(intercom.profile("threads")["addresses"]) == sorted(str(i) for i in ids)


def _synced_since(ids, since):
    from sqlalchemy import func

    def check():
        n = db.session.scalar(select(func.count()).select_from(SyncState).where(
            SyncState.account_id.in_(ids), SyncState.platform == "intercom", SyncState.last_attempt_at >= since))
        db.session.rollback()
        return n == len(ids) or None

    wait_for(check, timeout=30, what=f"the full reconcile of {ids}")
    return {st.account_id: st for st in db.session.scalars(select(SyncState).where(SyncState.account_id.in_(ids)))}


def test_the_nightly_full_reconcile_reads_each_profile_once_for_all_its_flats_and_repairs_drift(worker):
    """The nightly full reconcile: is each profile read once for all its flats (not once per
    flat), the drift behind our back repaired (a blocked flat given full access, a flat
    removed), and every account's sync state written, in a batch job?"""
    from portal.models import utcnow

    contract = worker.contract()
    flats = [worker.flat(contract=contract, login="nightly", flat=str(n)) for n in (1, 2, 3)]
    alone = worker.flat(login="nightly.other")
    acc.block(db.session.get(Account, flats[0].id), "manager", actor="test")
    db.session.commit()
    settled(*flats, alone)
    profile = worker.profile("nightly")
    first = profile["addresses"][str(flats[0].id)]
    first["access"] = {k: True for k in first["access"]}
    del profile["addresses"][str(flats[1].id)]
    worker.emulator.requests.clear()

    since = utcnow()
    assert reconcile.reconcile_all() == 4
    states = _synced_since([a.id for a in (*flats, alone)], since)
    assert {st.state for st in states.values()} == {"ok"}
    reads = [r for r in worker.emulator.requests if r[0] == "GET"]
    assert sorted(reads) == [("GET", "/api/v1/profiles/nightly", 200), ("GET", "/api/v1/profiles/nightly.other", 200)]
    assert [worker.level("nightly", a) for a in flats] == [LIMITED, FULL, FULL]
    puts = sorted(r[1] for r in worker.emulator.requests if r[0] == "PUT")
    assert puts == sorted(f"/api/v1/profiles/nightly/addresses/{a.id}" for a in flats[:2])
    # each repair is in the audit log of its own account
    for a in flats[:2]:
        assert db.session.scalar(select(AuditEntry).where(
            AuditEntry.action == "platform.call", AuditEntry.object_id == a.id,
            AuditEntry.summary.like(f"PUT %/addresses/{a.id} 20_"))) is not None


def test_a_full_reconcile_batch_moves_a_changed_login_and_keeps_one_profiles_failure_to_its_flats(intercom):
    """In one batch: a flat whose isvyaz_login changed leaves the old profile for the new
    one; a profile the platform refuses makes only its own flats wait for a retry (with the
    platform's error), the others are synced; an account whose own sync is running is not
    touched but gets its own job."""
    from portal.queue import get_redis

    contract = intercom.contract()
    moving = intercom.flat(contract=contract, login="batch.old", flat="1")
    stays = intercom.flat(contract=contract, login="batch.old", flat="2")
    refused = intercom.flat(login="batch.refused")
    busy = intercom.flat(login="batch.busy")
    ids = [moving.id, stays.id, refused.id, busy.id]
    assert reconcile.reconcile_accounts("intercom", ids)["ok"] == 4
    acc.update_account(db.session.get(Account, moving.id), {"extra": {"isvyaz_login": "batch.new"}}, actor="test")
    db.session.commit()
    intercom.emulator.fail("house not found", status=422, login="batch.refused")
    lock = get_redis().lock(f"portal:lock:reconcile:intercom:{busy.id}", timeout=30)
    assert lock.acquire(blocking=False)
    try:
        counts = reconcile.reconcile_accounts("intercom", ids)
    finally:
        lock.release()
    assert counts == {"ok": 2, "retry": 1, "own_jobs": 1}
    assert list(intercom.profile("batch.old")["addresses"]) == [str(stays.id)]
    assert list(intercom.profile("batch.new")["addresses"]) == [str(moving.id)]
    st = db.session.scalar(select(SyncState).filter_by(account_id=refused.id))
    assert st.state == "retry" and "house not found" in st.last_error
    assert db.session.scalar(select(OutboxEvent).where(OutboxEvent.account_id == moving.id,
                                                       OutboxEvent.processed_at.is_(None))) is None
    from portal.queue import get_queue

    assert f"reconcile-intercom-{busy.id}-low" in get_queue("low").job_ids
