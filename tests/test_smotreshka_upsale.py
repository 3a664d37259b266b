"""«Смотрёшка» upsale v3: the subscriber buys in the platform's app, the platform calls our
ensure and commit over HTTP (the emulator's subscriber app against a live portal)."""
from __future__ import annotations

import uuid
from decimal import Decimal

import requests
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import Account, Contract, LedgerEntry, SmotreshkaCall, SmotreshkaUpsale
from portal.platforms import connections
from portal.platforms.connections import save_connection
from portal.platforms.reconcile import reconcile_account
from tests.smotreshka_fixtures import (
    AUTH,
    CALLBACK_LOGIN,
    CALLBACK_PASSWORD,
    connect,
    linked,
    rest_of_month,
)


def balance(contract_id) -> Decimal:
    db.session.rollback()
    return db.session.get(Contract, contract_id).balance


def live_tv(account_id):
    db.session.rollback()
    return sorted(s.service.external_id for s in db.session.get(Account, account_id).services
                  if s.state != "ended" and s.service.platform == "smotreshka")


def call(portal, op, step, auth=AUTH, **params):
    r = requests.post(f"{portal}/upsale/v3/{op}/{step}", params=params, auth=auth, json={"clientIp": "1.2.3.4"},
                      timeout=10)
    return r.status_code, r.json()


def test_buying_an_additional_subscription_in_the_app(smotreshka, tv_catalog, live_fixed):
    """The subscriber buys «Кино» (150 ₽ a month) in the app on 17 November: ensure moves no
    money, commit assigns the service and charges 14 days of 30 once, 70 ₽, under the
    transaction's key; the platform and billing agree."""
    smotreshka.app.configure(live_fixed, *AUTH)
    account, pid = linked(smotreshka, tv_catalog)
    before = balance(account.contract_id)
    answer = smotreshka.app.buy(pid, "201", commit=False)
    assert answer["result"] == "operation_ensured" and uuid.UUID(answer["billingTransactionId"])
    assert balance(account.contract_id) == before and live_tv(account.id) == ["101"]
    answer = smotreshka.app.buy(pid, "201")
    assert answer["result"] == "operation_commited" and answer["billingStartTimestamp"]
    assert live_tv(account.id) == ["101", "201"]
    expected = (Decimal("150.00") * 14 / 30).quantize(Decimal("0.01"))
    assert expected == Decimal("70.00") and balance(account.contract_id) == before - expected
    [entry] = db.session.scalars(select(LedgerEntry).where(LedgerEntry.idempotency_key.like("upsale:%"))).all()
    assert entry.amount == -expected and entry.kind == "charge"
    assert smotreshka.accounts[pid]["subscriptions"] == {"101", "201"}
    assert reconcile_account("smotreshka", account.id) == "ok"
    assert smotreshka.accounts[pid]["subscriptions"] == {"101", "201"}


def test_a_repeated_commit_charges_once_and_replays_the_answer(smotreshka, tv_catalog, live_fixed):
    """The platform repeats the commit (and the ensure): the same answer comes back, the money
    moves once."""
    account, pid = linked(smotreshka, tv_catalog)
    login = "t_" + account.login
    q = {"accountId": pid, "accountLogin": login, "newOfferId": "202", "qsTransactionId": "qs-1"}
    status, ensured = call(live_fixed, "add-subscription", "ensure", **q)
    assert (status, ensured["result"]) == (200, "operation_ensured")
    again = call(live_fixed, "add-subscription", "ensure", **q)[1]
    assert again == ensured  # the same transaction
    before = balance(account.contract_id)
    q["billingTransactionId"] = ensured["billingTransactionId"]
    first = call(live_fixed, "add-subscription", "commit", **q)
    second = call(live_fixed, "add-subscription", "commit", **q)
    assert first == second and first[1]["result"] == "operation_commited"
    assert balance(account.contract_id) == before - rest_of_month("90.00")
    assert call(live_fixed, "add-subscription", "ensure", **{k: v for k, v in q.items()
                                                              if k != "billingTransactionId"})[1] == first[1]
    assert live_tv(account.id) == ["101", "202"]


def test_commits_arriving_at_once_charge_once_and_all_get_the_same_answer(smotreshka, tv_catalog, live_fixed):
    """The platform's retries overlap: four copies of one commit at the same moment; one does
    the work, the others wait for it and replay its answer; the money moves once."""
    from concurrent.futures import ThreadPoolExecutor

    account, pid = linked(smotreshka, tv_catalog)
    q = {"accountId": pid, "accountLogin": "t_" + account.login, "newOfferId": "201", "qsTransactionId": "qs-par"}
    q["billingTransactionId"] = call(live_fixed, "add-subscription", "ensure", **q)[1]["billingTransactionId"]
    before = balance(account.contract_id)
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: call(live_fixed, "add-subscription", "commit", **q), range(4)))
    assert all(a == answers[0] for a in answers) and answers[0][1]["result"] == "operation_commited"
    assert balance(account.contract_id) == before - rest_of_month("150.00")
    keyed = db.session.scalars(select(LedgerEntry).filter_by(
        idempotency_key=f"upsale:{q['billingTransactionId']}")).all()
    assert len(keyed) == 1 and "qs-par" in keyed[0].comment
    assert live_tv(account.id) == ["101", "201"]


def test_ensure_without_enough_money_answers_no_sufficient_balance(smotreshka, tv_catalog, live_fixed):
    """With 50 ₽ left, buying the 600 ₽ basic is refused at ensure; nothing is recorded or charged."""
    account, pid = linked(smotreshka, tv_catalog, services=("202",), money="150.00")
    money = balance(account.contract_id)
    assert money < rest_of_month("600.00")
    status, answer = call(live_fixed, "add-subscription", "ensure", accountId=pid,
                          accountLogin="t_" + account.login, newOfferId="102", qsTransactionId="qs-poor")
    assert (status, answer) == (200, {"result": "no_sufficient_balance"})
    assert balance(account.contract_id) == money
    assert db.session.scalar(select(func.count()).select_from(SmotreshkaUpsale)) == 0


def test_replace_switches_the_basic(smotreshka, tv_catalog, live_fixed):
    """The app replaces «Лайт» by «Оптимальный»: the old basic ends (refunded), the new one is
    charged, and the platform has the new one only."""
    smotreshka.app.configure(live_fixed, *AUTH)
    account, pid = linked(smotreshka, tv_catalog, money="2000.00")
    answer = smotreshka.app.replace(pid, "101", "102")
    assert answer["result"] == "operation_commited"
    assert live_tv(account.id) == ["102"]
    assert smotreshka.accounts[pid]["subscriptions"] == {"102"}
    entries = db.session.scalars(select(LedgerEntry).filter_by(contract_id=account.contract_id)).all()
    assert any(e.kind == "refund" for e in entries)  # the rest of the month of «Лайт»


def test_add_of_a_second_basic_is_a_replace_and_an_active_offer_needs_no_action(smotreshka, tv_catalog, live_fixed):
    """Buying a basic while holding another replaces it; buying what is active already needs no action."""
    smotreshka.app.configure(live_fixed, *AUTH)
    account, pid = linked(smotreshka, tv_catalog, money="2000.00")
    assert smotreshka.app.buy(pid, "101")["result"] == "no_action_required"
    assert smotreshka.app.buy(pid, "102")["result"] == "operation_commited"
    assert live_tv(account.id) == ["102"]


def test_unknown_accounts_offers_and_blocked_accounts_have_no_rules(smotreshka, tv_catalog, live_fixed):
    """An account we do not know, an offer the tariff does not have, a manager-blocked account:
    no_subscription_rules; a wrong accountId for a known login too."""
    from portal.billing import accounts as acc

    account, pid = linked(smotreshka, tv_catalog)
    login = "t_" + account.login
    ask = lambda **kw: call(live_fixed, "add-subscription", "ensure", qsTransactionId=str(uuid.uuid4()),  # noqa: E731
                            **{"accountId": pid, "accountLogin": login, "newOfferId": "201", **kw})[1]["result"]
    assert ask(accountLogin="t_nobody") == "no_subscription_rules"
    assert ask(accountLogin="other_" + account.login) == "no_subscription_rules"
    assert ask(newOfferId="999") == "no_subscription_rules"
    assert ask(accountId="0" * 24) == "no_subscription_rules"
    acc.block(db.session.get(Account, account.id), "manager", actor="test")
    db.session.commit()
    assert ask() == "no_subscription_rules"


def test_an_offer_only_another_subscribers_tariff_has_is_refused(smotreshka, tv_catalog, live_fixed):
    """«Кино» is sold on a neighbour's tariff but not on this subscriber's: no_subscription_rules
    and nothing recorded; once their account gets a multi-tariff with «Кино», it is ensured."""
    from portal.billing import accounts as acc
    from tests.builders import gen_tariff

    account, pid = linked(smotreshka, tv_catalog, tariff=gen_tariff([tv_catalog["101"]], kind="services"))
    linked(smotreshka, tv_catalog)  # the neighbour: a tariff with every TV service
    ask = lambda: call(live_fixed, "add-subscription", "ensure", qsTransactionId=str(uuid.uuid4()),  # noqa: E731
                       accountId=pid, accountLogin="t_" + account.login, newOfferId="201")[1]["result"]
    assert ask() == "no_subscription_rules"
    assert db.session.scalar(select(func.count()).select_from(SmotreshkaUpsale)) == 0
    cinema = gen_tariff([tv_catalog["201"]], kind="services", is_multi=True)
    acc.update_account(db.session.get(Account, account.id), {"multi_tariff_ids": [cinema.id]}, actor="test")
    db.session.commit()
    assert ask() == "operation_ensured"


def test_bad_parameters_are_named_and_change_nothing(smotreshka, tv_catalog, live_fixed):
    """A missing parameter, a commit with a made-up transaction id, a reused qsTransactionId
    with another offer: 422, 404, 409, each naming the problem."""
    account, pid = linked(smotreshka, tv_catalog)
    login = "t_" + account.login
    status, answer = call(live_fixed, "add-subscription", "ensure", accountId=pid, accountLogin=login,
                          qsTransactionId="qs-x")
    assert status == 422 and answer["field"] == "newOfferId"
    status, answer = call(live_fixed, "add-subscription", "commit", accountId=pid, accountLogin=login,
                          newOfferId="201", qsTransactionId="qs-x", billingTransactionId="not-a-uuid")
    assert status == 422 and answer["field"] == "billingTransactionId"
    status, answer = call(live_fixed, "add-subscription", "commit", accountId=pid, accountLogin=login,
                          newOfferId="201", qsTransactionId="qs-x", billingTransactionId=str(uuid.uuid4()))
    assert status == 404
    assert call(live_fixed, "add-subscription", "ensure", accountId=pid, accountLogin=login, newOfferId="201",
                qsTransactionId="qs-y")[1]["result"] == "operation_ensured"
    status, answer = call(live_fixed, "add-subscription", "ensure", accountId=pid, accountLogin=login,
                          newOfferId="202", qsTransactionId="qs-y")
    assert status == 409
    assert live_tv(account.id) == ["101"]


def test_callers_need_an_allowed_address_and_the_basic_credentials(smotreshka, tv_catalog, live_fixed):
    """Wrong Basic credentials: 401; an address outside the allowlist: 403. Every call, refused
    ones included, is stored with our answer (and never with the password)."""
    account, pid = linked(smotreshka, tv_catalog)
    q = {"accountId": pid, "accountLogin": "t_" + account.login, "newOfferId": "201", "qsTransactionId": "qs-a"}
    assert call(live_fixed, "add-subscription", "ensure", auth=None, **q)[0] == 401
    assert call(live_fixed, "add-subscription", "ensure", auth=(CALLBACK_LOGIN, "wrong"), **q)[0] == 401
    connect(smotreshka, upsale_allowed_ips="10.20.0.0/16")
    assert call(live_fixed, "add-subscription", "ensure", **q) == (403, {"error": "source address not allowed"})
    db.session.rollback()
    calls = db.session.scalars(select(SmotreshkaCall).order_by(SmotreshkaCall.id)).all()
    assert [c.status for c in calls] == [401, 401, 403]
    assert all(c.remote_addr == "127.0.0.1" and c.query["qsTransactionId"] == "qs-a" for c in calls)
    assert CALLBACK_PASSWORD not in str([(c.query, c.body, c.answer) for c in calls])
    assert live_tv(account.id) == ["101"]


def test_a_changed_password_or_a_disabled_connection_counts_from_the_next_call(smotreshka, tv_catalog, live_fixed):
    """The portal keeps the connection's settings between calls (on PostgreSQL): staff change the
    callback password, and the very next call with the old one is refused and the new one works;
    disabled, the next call is answered 503; enabled again, calls go through."""
    account, pid = linked(smotreshka, tv_catalog)
    q = {"accountId": pid, "accountLogin": "t_" + account.login, "newOfferId": "201"}
    assert call(live_fixed, "add-subscription", "ensure", qsTransactionId="qs-1", **q)[0] == 200
    save_connection("smotreshka", url=smotreshka.url, password="new-Secret-88", actor="test")
    db.session.commit()
    assert call(live_fixed, "add-subscription", "ensure", qsTransactionId="qs-2", **q)[0] == 401
    assert call(live_fixed, "add-subscription", "ensure", auth=(CALLBACK_LOGIN, "new-Secret-88"),
                qsTransactionId="qs-3", **q)[0] == 200
    save_connection("smotreshka", url=smotreshka.url, enabled=False, actor="test")
    db.session.commit()
    assert call(live_fixed, "add-subscription", "ensure", auth=(CALLBACK_LOGIN, "new-Secret-88"),
                qsTransactionId="qs-4", **q) == (503, {"error": "upsale is not configured"})
    save_connection("smotreshka", url=smotreshka.url, enabled=True, actor="test")
    db.session.commit()
    assert call(live_fixed, "add-subscription", "ensure", auth=(CALLBACK_LOGIN, "new-Secret-88"),
                qsTransactionId="qs-5", **q)[0] == 200


def test_the_connection_row_is_read_again_only_when_it_changed(smotreshka):
    """On PostgreSQL the stored connection comes from memory while its row version is the same,
    and is read again (with the new password) once the row changed; SQLite reads it every time."""
    first = connections.current("smotreshka")
    again = connections.current("smotreshka")
    assert (again is first) == (db.session.get_bind().dialect.name == "postgresql")
    assert first.password == CALLBACK_PASSWORD and first.enabled
    save_connection("smotreshka", url=smotreshka.url, password="other-Secret-1", actor="test")
    db.session.commit()
    changed = connections.current("smotreshka")
    assert changed is not first and changed.password == "other-Secret-1"
    db.session.rollback()


def test_every_call_and_answer_is_stored_for_audit(smotreshka, tv_catalog, live_fixed):
    """After a purchase the staff see both calls, with the parameters, the app's context and our answers."""
    smotreshka.app.configure(live_fixed, *AUTH)
    account, pid = linked(smotreshka, tv_catalog)
    smotreshka.app.buy(pid, "201")
    db.session.rollback()
    calls = db.session.scalars(select(SmotreshkaCall).order_by(SmotreshkaCall.id)).all()
    assert [(c.endpoint, c.result) for c in calls] == [("add-subscription/ensure", "operation_ensured"),
                                                       ("add-subscription/commit", "operation_commited")]
    assert calls[0].body["upsaleRequestContext"]["clientIp"] == "10.0.0.7"
    assert calls[1].transaction_id == calls[0].answer["billingTransactionId"]


def test_a_trial_defers_the_charge(smotreshka, tv_catalog, live_fixed):
    """A 7-day trial: the service is assigned now, nothing is charged today."""
    smotreshka.app.configure(live_fixed, *AUTH)
    account, pid = linked(smotreshka, tv_catalog)
    before = balance(account.contract_id)
    assert smotreshka.app.buy(pid, "201", trial_days=7)["result"] == "operation_commited"
    assert balance(account.contract_id) == before
    assert live_tv(account.id) == ["101", "201"]
