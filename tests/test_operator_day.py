"""The operator's day (issue 16): small things staff notice at once."""
from __future__ import annotations

import re

from tests.builders import gen_account, gen_staff
from tests.helpers import login


def _input(html: str, name: str) -> str:
    return re.search(rf'<input name="{name}"[^>]*>', html).group(0)


def test_password_fields_ask_for_a_new_password_not_the_operators_own(app, client):
    """A subscriber's cabinet password and a service password are new passwords: the browser's
    password manager must not fill in the operator's own, and the hint reads as a hint."""
    with app.app_context():
        a = gen_account()
        aid, sid = a.id, a.contract.subscriber_id
        gen_staff("boss")
    login(client, "boss")
    for url, name in ((f"/subscribers/{sid}?lang=en", "cabinet_password"), (f"/accounts/{aid}?lang=en", "password")):
        field = _input(client.get(url).get_data(as_text=True), name)
        assert 'autocomplete="new-password"' in field and 'placeholder="leave empty to keep"' in field, field
        assert "&#34;" not in field and "&quot;" not in field


def test_a_disabled_accounts_services_read_as_not_in_force(app, client):
    """A disabled account lists its services as disabled, with no suspend or end buttons."""
    from portal.billing import accounts as acc
    from portal.extensions import db
    from tests.builders import gen_service

    with app.app_context():
        a = gen_account(services=[gen_service(name="Кино")])
        acc.disable(a, actor="t")
        db.session.commit()
        aid = a.id
        gen_staff("boss3")
    login(client, "boss3")
    html = client.get(f"/accounts/{aid}?lang=en").get_data(as_text=True)
    row = re.search(r'<tr data-service="Кино">.*?</tr>', html, re.S).group(0)
    assert "disabled" in row and "active" not in row
    assert "Suspend" not in row and ">End<" not in row


def test_the_top_bar_names_the_staff_member_once_and_the_site_has_an_icon(app, client):
    """"Администратор · Администратор" read twice; every page names an icon that is served."""
    from portal.extensions import db

    with app.app_context():
        gen_staff("chief").full_name = "Администратор"
        db.session.commit()
    login(client, "chief")
    page = client.get("/?lang=ru").get_data(as_text=True)
    who = re.search(r'<span class="who">(.*?)</span>', page, re.S).group(1).strip()
    assert who == "Администратор"
    icon = re.search(r'<link rel="icon"[^>]*href="([^"]+)"', page).group(1)
    r = client.get(icon)
    assert r.status_code == 200 and r.mimetype == "image/svg+xml"


def test_a_repeated_receipt_id_says_it_was_taken_already(app, client):
    """Staff type a payment with a receipt id that was taken before: the page says so, shows the
    amount as billing read it, and no money moves a second time."""
    from decimal import Decimal

    from babel.numbers import format_currency

    from portal.extensions import db
    from portal.models import Contract
    from tests.builders import gen_contract
    from tests.helpers import post

    with app.app_context():
        cid = gen_contract().id
        gen_staff("cashier", role="manager")
    login(client, "cashier")
    data = {"amount": "1 000,50", "external_id": "ЧЕК-77", "nonce": "a1"}
    shown = format_currency(Decimal("1000.50"), "RUB", locale="en")  # "RUB1,000.50": as Babel writes it
    first = post(client, f"/contracts/{cid}/payments?lang=en", data, follow_redirects=True).get_data(as_text=True)
    assert f"Payment of {shown} taken." in first
    again = post(client, f"/contracts/{cid}/payments?lang=en", {**data, "nonce": "a2"},
                 follow_redirects=True).get_data(as_text=True)
    assert "was taken already" in again and shown in again and "Payment of" not in again
    with app.app_context():
        assert db.session.get(Contract, cid).balance == Decimal("1000.50")


def test_the_jobs_page_lists_the_periodic_jobs_with_their_next_run(app, client, processes):
    """Staff ask "when is the next charge run?": the jobs page lists every periodic job with its
    schedule and next run, read from the running scheduler; without one it says nothing runs.
    (The page's language is not asserted: `processes` holds an app context, which keeps the
    first request's language.)"""
    from datetime import datetime, timedelta

    from babel.dates import format_datetime
    from rq.cron import CronScheduler

    from portal.billing import clock
    from portal.queue import get_redis
    from tests.platform_fixtures import wait_for

    with app.app_context():
        gen_staff("ops")
        nobody_schedules = not CronScheduler.all(get_redis())
    login(client, "ops")
    page = client.get("/jobs?lang=en").get_data(as_text=True)
    assert re.search(r'data-periodic="charge-run"><td>charge-run</td><td><code>5 0 \* \* \*</code>', page)
    if nobody_schedules:  # (another test's scheduler may still be registered for a moment)
        assert 'id="no-scheduler"' in page  # "the scheduler is not running: no periodic job runs"

    processes.start("jobs.scheduler")
    with app.app_context():
        now = datetime.now(clock.tz())
    due = now.replace(hour=0, minute=5, second=0, microsecond=0)
    due += timedelta(days=1) if due <= now else timedelta()
    row = wait_for(lambda: (m := re.search(r'<tr data-periodic="charge-run">.*?</tr>',
                                           client.get("/jobs?lang=en").get_data(as_text=True), re.S))
                   and any(format_datetime(due, "short", locale=lang) in m.group(0) for lang in ("ru", "en"))
                   and m.group(0), timeout=60,
                   what="the charge run's next run on the jobs page")
    assert "—" in row  # it has not run yet
    assert 'id="no-scheduler"' not in client.get("/jobs?lang=en").get_data(as_text=True)


def test_the_audit_log_and_history_speak_words_not_codes(app, client):
    """Staff read "Account blocked" by "Мария Петрова", not `account.block` by `staff:maria`;
    the code stays on hover."""
    from portal.billing import accounts as acc
    from portal.extensions import db

    with app.app_context():
        maria = gen_staff("maria")
        maria.full_name = "Мария Петрова"
        a = gen_account()
        acc.block(a, "manager", actor="staff:maria")
        db.session.commit()
        aid = a.id
    login(client, "maria")
    for url in (f"/accounts/{aid}?lang=en", "/audit?lang=en"):
        html = client.get(url).get_data(as_text=True)
        row = re.search(r'<tr>(?:(?!</tr>).)*data-action="account\.block".*?</tr>', html, re.S).group(0)
        assert "Account blocked" in row and "Мария Петрова" in row, row
        assert 'title="account.block"' in row and 'title="staff:maria"' in row
    html = client.get("/audit?lang=ru").get_data(as_text=True)
    assert "Учётная запись заблокирована" in html and "<code>account.block</code>" not in html


def test_the_payments_list_names_who_took_each_payment(app, client):
    """The payments list's "Author" reads "Мария Петрова" for a cashier's payment and the
    platform's title for an online one, not `staff:maria` / `platform:yookassa`; the code stays
    on hover."""
    from decimal import Decimal

    from portal.billing import ledger
    from portal.extensions import db
    from tests.builders import gen_contract

    with app.app_context():
        maria = gen_staff("maria")
        maria.full_name = "Мария Петрова"
        contract = gen_contract()
        ledger.post(contract.id, "payment", Decimal("100.00"), actor="staff:maria", idempotency_key="payment:cash-1")
        ledger.post(contract.id, "payment", Decimal("50.00"), actor="system", idempotency_key="payment:auto-1")
        db.session.commit()
    login(client, "maria")
    html = client.get("/payments?lang=en").get_data(as_text=True)
    cash = re.search(r"<tr>(?:(?!</tr>).)*cash-1.*?</tr>", html, re.S).group(0)
    auto = re.search(r"<tr>(?:(?!</tr>).)*auto-1.*?</tr>", html, re.S).group(0)
    assert 'title="staff:maria">Мария Петрова<' in cash
    assert 'title="system">billing (automatic)<' in auto
    assert ">staff:maria<" not in html and ">system<" not in html


def test_a_guest_is_asked_to_log_in_in_russian(client):
    """Flask-Login's redirect message was English on a Russian page."""
    r = client.get("/accounts", follow_redirects=True)
    assert "Войдите, чтобы открыть эту страницу." in r.get_data(as_text=True)


def test_dashboard_tiles_open_their_lists_and_chart_days_read_in_the_language(app, client):
    """A tile opens the list it counts (blocked accounts -> the accounts list filtered so); the
    chart's days are "4 нояб." in Russian, not "11-04"."""
    import json

    with app.app_context():
        gen_staff("dash")
    login(client, "dash")
    page = client.get("/?lang=ru").get_data(as_text=True)
    tile = re.search(r'<a class="card" href="([^"]+)"><div class="label">[^<]+</div><div class="value warn" '
                     r'id="fig-blocked"', page)
    assert tile and tile.group(1) == "/accounts?status=blocked"
    listed = client.get(tile.group(1)).get_data(as_text=True)
    assert '<option value="blocked" selected>' in listed
    chart = json.loads(re.search(r'<script id="chart-data" type="application/json">(.*?)</script>',
                                 page, re.S).group(1))
    assert chart and not re.fullmatch(r"\d\d-\d\d", chart[-1]["label"])
    assert re.search(r"[а-я]", chart[-1]["label"])  # a Russian month


def test_the_sync_panel_shows_the_difference_field_by_field(app, client):
    """The account's platform panel lists each field with billing's wish beside the platform's
    value, the differing ones marked; the raw JSON is one click away, without encrypted fields."""
    from portal.extensions import db
    from portal.models import SyncState

    with app.app_context():
        a = gen_account()
        db.session.add(SyncState(account_id=a.id, platform="webhook", state="retry", attempts=1,
                                 desired={"status": "active", "plan": "Домашний", "password_enc": "gAAAA-secret"},
                                 actual={"status": "blocked", "plan": "Домашний", "extra": [1, 2]}))
        db.session.commit()
        aid = a.id
        gen_staff("syncer")
    login(client, "syncer")
    html = client.get(f"/accounts/{aid}?lang=en").get_data(as_text=True)
    rows = dict(re.findall(r'<tr data-field="([a-z_]+)"( class="differs")?>', html))
    assert rows["status"] == ' class="differs"' and rows["plan"] == "" and "extra" in rows
    assert "password_enc" not in rows and "gAAAA-secret" not in html


def test_the_cabinet_hosting_order_shows_todays_charge_and_no_form_to_a_blocked_account(app, client, seller):
    """Before "Order and pay" the subscriber sees what leaves the balance today (the rest of the
    month, worked out here); a blocked account gets a note instead of the form."""
    import calendar
    from decimal import ROUND_HALF_UP, Decimal

    from portal.billing import accounts as acc
    from portal.billing import clock
    from portal.extensions import db
    from tests.billmanager_fixtures import imported_tariff, make_handler
    from tests.builders import subscriber_with_account
    from tests.helpers import cabinet_login

    with app.app_context():
        t = imported_tariff(make_handler(seller), price="450.00")
        s, c, a = subscriber_with_account("hoster", paid="1000.00")
        tid, aid = t.id, a.id
        today = clock.today()
    dim = calendar.monthrange(today.year, today.month)[1]
    expected = (Decimal("450.00") * (dim - today.day + 1) / dim).quantize(Decimal("0.01"), ROUND_HALF_UP)
    cabinet_login(client, "hoster", lang="en")
    page = client.get("/cabinet/hosting?lang=en").get_data(as_text=True)
    today_text = re.search(rf'<span class="bm-today" data-tariff="{tid}">([^<]+)</span>', page).group(1)
    assert f"{expected:,.2f}" in today_text
    with app.app_context():
        acc.block(db.session.get(type(a), aid), "manager", actor="t")
        db.session.commit()
    page = client.get("/cabinet/hosting?lang=en").get_data(as_text=True)
    assert 'id="no-payer"' in page and "Order and pay" not in page
