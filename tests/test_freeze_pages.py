"""Grace, hold-until and freezes on the pages (issue 19 sections 3 and 4): the admin's rules,
the contract's own grace and hold-until, staff freezing an account, the cabinet's freeze (a
double click over real HTTP freezes once; in Chromium end to end)."""
from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal

import pytest
import requests
from sqlalchemy import func, select

from portal.billing import clock, freeze, grace, ledger
from portal.extensions import db
from portal.models import Account, Contract, Freeze, FreezeRule, LedgerEntry, OutboxEvent
from tests.builders import gen_account, gen_agent, gen_contract, gen_service, gen_subscriber, gen_tariff
from tests.helpers import CABINET_PASSWORD, cabinet_login, field_error, post, staff_in_english


def set_rule(**kw):
    data = {"enabled": True, "min_days": "3", "max_days": "30", "per_year": "2", "cooldown_days": "10", "fee": "0"}
    data.update(kw)
    freeze.save_rule(data, actor="test")
    db.session.commit()


def subscriber_account(login="anna", paid="1000.00"):
    s = gen_subscriber(full_name=f"Абонент {login}", cabinet_login=login, cabinet_password=CABINET_PASSWORD)
    c = gen_contract(s)
    if Decimal(paid):
        ledger.payment(c.id, Decimal(paid), actor="t", external_id=f"pay-{login}")
        db.session.commit()
    svc = gen_service(price="300.00", name=f"Интернет {login}")
    a = gen_account(contract=c, tariff=gen_tariff([svc], name=f"Тариф {login}"), agent=gen_agent(platform="webhook"),
                    services=[svc], login=login)
    return c, a


def fresh(model, ident):
    db.session.expire_all()
    return db.session.get(model, ident)


def test_an_admin_sets_grace_and_freeze_rules_and_bad_values_name_their_field(ctx, client):
    """The rules page saves grace and freeze limits; a wrong value is shown beside its field and
    nothing is saved."""
    staff_in_english(client)
    r = post(client, "/blocking-rules/grace", {"days": "91"})
    assert r.status_code == 422 and field_error(r.get_data(as_text=True), "days") == "from 0 to 90 days"
    r = post(client, "/blocking-rules/grace", {"days": "3"})
    assert r.status_code == 303 and grace.rule().days == 3
    r = post(client, "/blocking-rules/freeze", {"enabled": "1", "min_days": "40", "max_days": "30", "per_year": "2",
                                                "cooldown_days": "5", "fee": "10"})
    assert r.status_code == 422
    assert field_error(r.get_data(as_text=True), "min_days") == "must not be over the maximum"
    assert db.session.get(FreezeRule, 1) is None
    r = post(client, "/blocking-rules/freeze", {"enabled": "1", "min_days": "5", "max_days": "30", "per_year": "2",
                                                "cooldown_days": "5", "fee": "10"})
    assert r.status_code == 303
    rule = fresh(FreezeRule, 1)
    assert (rule.enabled, rule.min_days, rule.fee) == (True, 5, Decimal("10.00"))
    page = client.get("/blocking-rules").get_data(as_text=True)
    assert 'value="5"' in page and "Grace and freezes" in page


def test_staff_set_a_hold_until_that_lifts_a_balance_block_and_is_shown_in_the_cabinet(ctx, client):
    """A manager sets "do not block until" on a blocked contract: the block goes at once, the
    contract page and the subscriber's cabinet show the day; a day in the past is refused."""
    c, a = subscriber_account("boris", paid="0.00")
    assert fresh(Account, a.id).reasons == ["balance"]
    staff_in_english(client, role="manager")
    r = post(client, f"/contracts/{c.id}/holds", {"do_not_block_until": "2000-01-01", "grace_days": ""})
    assert r.status_code == 422
    assert field_error(r.get_data(as_text=True), "do_not_block_until") == "must be today or later"
    until = clock.today() + timedelta(days=5)
    r = post(client, f"/contracts/{c.id}/holds", {"do_not_block_until": until.isoformat(), "grace_days": "2"})
    assert r.status_code == 303
    assert fresh(Account, a.id).status == "active"
    assert (fresh(Contract, c.id).do_not_block_until, fresh(Contract, c.id).grace_days) == (until, 2)
    page = client.get(f"/contracts/{c.id}").get_data(as_text=True)
    assert f'data-hold-until="{until.isoformat()}"' in page
    cabinet_login(client, "boris")  # (one client: the tests share one app context, and its CSRF token)
    home = client.get("/cabinet/").get_data(as_text=True)
    assert f'data-hold-until="{until.isoformat()}"' in home


def test_staff_freeze_and_unfreeze_an_account(ctx, client):
    """On the account page a manager freezes the account (the period limits hold) and ends it."""
    set_rule()
    _c, a = subscriber_account("vera")
    staff_in_english(client, role="manager")
    page = client.get(f"/accounts/{a.id}").get_data(as_text=True)
    nonce = re.search(r'id="account-freeze".*?name="nonce" value="([^"]+)"', page, re.S).group(1)
    too_long = (clock.today() + timedelta(days=40)).isoformat()
    r = post(client, f"/accounts/{a.id}/freeze", {"nonce": nonce, "until": too_long})
    assert r.status_code == 422
    assert field_error(r.get_data(as_text=True), "until") == "longer than the longest freeze allowed"
    until = clock.today() + timedelta(days=6)
    r = post(client, f"/accounts/{a.id}/freeze", {"nonce": nonce, "until": until.isoformat()})
    assert r.status_code == 303 and fresh(Account, a.id).reasons == ["subscriber"]
    assert f'data-until="{until.isoformat()}"' in client.get(f"/accounts/{a.id}").get_data(as_text=True)
    r = post(client, f"/accounts/{a.id}/unfreeze", {})
    assert r.status_code == 303 and fresh(Account, a.id).status == "active"


def test_the_cabinet_refuses_a_period_outside_the_limits_and_another_subscribers_account(ctx, client):
    """A too short period is refused with the reason; someone else's account is a 404."""
    set_rule(min_days="7")
    _c, a = subscriber_account("gleb")
    _c2, other = subscriber_account("dina")
    cabinet_login(client, "gleb")
    page = client.get(f"/cabinet/accounts/{a.id}").get_data(as_text=True)
    nonce = re.search(r'name="nonce" value="([^"]+)"', page).group(1)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    r = client.post(f"/cabinet/accounts/{a.id}/freeze", follow_redirects=True,
                    data={"csrf_token": csrf, "nonce": nonce, "until": clock.today().isoformat()})
    assert "shorter than the shortest freeze allowed" in r.get_data(as_text=True)
    assert fresh(Account, a.id).status == "active"
    r = client.post(f"/cabinet/accounts/{other.id}/freeze",
                    data={"csrf_token": csrf, "nonce": nonce + "x", "until": clock.today().isoformat()})
    assert r.status_code == 404


@pytest.mark.integration
def test_ten_parallel_posts_of_the_freeze_form_freeze_once(app, live, monkeypatch):
    """A double click gone wild: ten posts of one freeze form at once give one freeze, one fee,
    one refund and one block for the platforms."""
    monkeypatch.setitem(app.config, "SESSION_COOKIE_SECURE", False)  # (plain HTTP here)
    with app.app_context():
        set_rule(fee="15")
        c, a = subscriber_account("anna")
        cid, aid = c.id, a.id
        balance_before = c.balance
    s = requests.Session()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', s.get(f"{live}/cabinet/login?lang=en", timeout=10).text)
    s.post(f"{live}/cabinet/login", data={"login": "anna", "password": CABINET_PASSWORD, "csrf_token": csrf.group(1)},
           timeout=10)
    page = s.get(f"{live}/cabinet/accounts/{aid}", timeout=10).text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    nonce = re.search(r'name="nonce" value="([^"]+)"', page).group(1)
    with app.app_context():
        until = (clock.today() + timedelta(days=5)).isoformat()

    def click(_i):
        return s.post(f"{live}/cabinet/accounts/{aid}/freeze", timeout=60, allow_redirects=False,
                      data={"csrf_token": csrf, "nonce": nonce, "until": until}).status_code

    with ThreadPoolExecutor(10) as pool:
        assert list(pool.map(click, range(10))) == [303] * 10
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Freeze).where(Freeze.account_id == aid)) == 1
        assert db.session.scalar(select(func.count()).select_from(LedgerEntry).where(
            LedgerEntry.contract_id == cid, LedgerEntry.idempotency_key.like("freeze-fee:%"))) == 1
        assert db.session.scalar(select(func.count()).select_from(OutboxEvent).where(
            OutboxEvent.account_id == aid, OutboxEvent.reason == "account.block")) == 1
        refunds = db.session.scalars(select(LedgerEntry.amount).where(
            LedgerEntry.contract_id == cid, LedgerEntry.kind == "refund")).all()
        assert len(refunds) == 1
        assert db.session.get(Contract, cid).balance == balance_before - Decimal("15.00") + refunds[0]
        assert db.session.get(Account, aid).reasons == ["subscriber"]


@pytest.mark.browser
def test_a_subscriber_freezes_an_account_in_the_cabinet_and_comes_back_early(app, live, page):
    """In Russian: the subscriber picks the last frozen day, freezes, sees the account blocked and
    frozen through that day, then unfreezes it and sees it active."""
    with app.app_context():
        set_rule(min_days="3", max_days="30")
        _c, a = subscriber_account("anna")
        aid = a.id
        until = clock.today() + timedelta(days=4)
    page.goto(f"{live}/cabinet/login?lang=ru")
    page.fill("input[name=login]", "anna")
    page.fill("input[name=password]", CABINET_PASSWORD)
    page.click("button[type=submit]")
    page.goto(f"{live}/cabinet/accounts/{aid}")
    form = page.locator(f"#freeze-{aid} form")
    assert "Заморозить" in page.locator(f"#freeze-{aid}").inner_text()
    form.locator("input[name=until]").fill(until.isoformat())
    form.locator("button[type=submit]").click()
    page.wait_for_selector(f"#freeze-{aid}[data-until='{until.isoformat()}']")
    assert "Заморожен" in page.locator(f"#freeze-{aid}").inner_text()
    with app.app_context():
        assert fresh(Account, aid).reasons == ["subscriber"]
    page.locator(f"#freeze-{aid} button[type=submit]").click()
    # no freeze in force; a new one only after the pause between freezes
    page.wait_for_selector(f"#freeze-{aid} .cab-freeze-refusal")
    with app.app_context():
        assert fresh(Account, aid).status == "active"
        assert db.session.scalar(select(Freeze.status).where(Freeze.account_id == aid)) == "ended"



def test_while_freezes_are_on_the_open_ended_self_block_is_refused_and_unblock_ends_a_freeze(ctx, client):
    """With freezes on, a post to the old "block" action is refused (the freeze's limits hold);
    the old "unblock" action on a frozen account ends the freeze, not just the block."""
    set_rule()
    _c, a = subscriber_account("lena")
    cabinet_login(client, "lena")
    page = client.get(f"/cabinet/accounts/{a.id}").get_data(as_text=True)
    assert f"/cabinet/accounts/{a.id}/block" not in page
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    r = client.post(f"/cabinet/accounts/{a.id}/block", data={"csrf_token": csrf}, follow_redirects=True)
    assert "freeze the account instead" in r.get_data(as_text=True)
    assert fresh(Account, a.id).status == "active"
    freeze.start(fresh(Account, a.id), clock.today() + timedelta(days=5), actor="lena")
    db.session.commit()
    client.post(f"/cabinet/accounts/{a.id}/unblock", data={"csrf_token": csrf})
    assert fresh(Account, a.id).status == "active"
    assert db.session.scalar(select(Freeze.status).where(Freeze.account_id == a.id)) == "ended"


def test_the_cabinet_and_the_contract_page_show_the_day_of_the_coming_block_during_grace(ctx, client):
    """Below my limit with 3 days of grace: my cabinet says on which day my accounts will be
    blocked, and so does the contract page for staff."""
    grace.save_rule({"days": "3"}, actor="t")
    db.session.commit()
    c, a = subscriber_account("ivan", paid="0.00")
    assert fresh(Account, a.id).status == "active"  # in grace, not blocked
    block_on = (clock.today() + timedelta(days=3)).isoformat()
    cabinet_login(client, "ivan")
    assert f'data-block-on="{block_on}"' in client.get("/cabinet/").get_data(as_text=True)
    assert f'data-block-on="{block_on}"' in client.get(f"/cabinet/contracts/{c.id}").get_data(as_text=True)
    staff_in_english(client, role="manager")
    assert f'data-block-on="{block_on}"' in client.get(f"/contracts/{c.id}").get_data(as_text=True)
