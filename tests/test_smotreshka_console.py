"""«Смотрёшка» for staff and subscribers: the page, the check, the catalog import, the drift
report with its fixes (jobs run by the real worker), and the cabinet's self-service."""
from __future__ import annotations

import re
from decimal import Decimal

from sqlalchemy import select

from portal.extensions import db
from portal.models import Account, AuditEntry, CatalogService, Contract, SmotreshkaDrift
from portal.platforms.reconcile import reconcile_account
from portal.platforms.smotreshka import console, tv
from tests.builders import gen_staff
from tests.helpers import HX, english, post
from tests.helpers import cabinet_login as subscriber_login
from tests.helpers import login_in_english as login
from tests.platform_fixtures import wait_for
from tests.smotreshka_fixtures import CALLBACK_PASSWORD, connect, rest_of_month, tv_account


def cabinet_login(client, *args, **kw):
    subscriber_login(client, *args, **kw)
    english(client)


def cpost(client, path, data, **kw):
    """Post in the cabinet with its CSRF token (every cabinet page carries it for HTMX)."""
    page = client.get("/cabinet/").get_data(as_text=True)
    token = re.search(r'"X-CSRFToken": "([^"]+)"', page).group(1)
    return client.post(path, data={"csrf_token": token, **data}, **kw)


def digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def job_done(client, html):
    """Follow a progress row until the job has finished; the finished row's HTML."""
    url = re.search(r'hx-get="([^"]+)"', html).group(1).replace("&amp;", "&")
    return wait_for(lambda: (row := client.get(url).get_data(as_text=True)) and 'data-state="finished"' in row and row,
                    timeout=60, what="the job")


def test_the_page_shows_the_listen_urls_and_the_check_reports_what_works(smotreshka, client, processes):
    """Staff see the upsale URLs to give the platform; "check" (a job) reports the platform
    reachable, our address accepted and the catalog readable; with our address refused it says so."""
    gen_staff("mgr", role="manager")
    login(client, "mgr")
    html = client.get("/smotreshka").get_data(as_text=True)
    assert "http://localhost/upsale/v3/add-subscription/ensure" in html
    assert "http://localhost/upsale/v3/replace-subscription/commit" in html
    assert CALLBACK_PASSWORD not in html
    processes.start("jobs.worker")
    row = job_done(client, post(client, "/smotreshka/check", {}, headers=HX).get_data(as_text=True))
    assert "reachable" in row and "4 subscriptions" in row
    page = client.get("/smotreshka?lang=en").get_data(as_text=True)
    check = page[page.index('id="smotreshka-check"'):page.index('id="smotreshka-catalog"')]
    assert check.count("badge-ok") == 4 - 1 and "/upsale/v3/add-subscription/commit" in check
    smotreshka.deny_source()
    job_done(client, post(client, "/smotreshka/check", {}, headers=HX).get_data(as_text=True))
    page = client.get("/smotreshka?lang=en").get_data(as_text=True)
    check = page[page.index('id="smotreshka-check"'):page.index('id="smotreshka-catalog"')]
    assert "HTTP 403" in check and check.count("badge-failed") == 2  # address refused, catalog not read


def test_the_listen_urls_are_on_public_url_when_it_is_set(smotreshka, client, app, monkeypatch):
    """The upsale URLs staff give the platform are the portal's public address (PUBLIC_URL), not
    the one this staff page was opened by."""
    monkeypatch.setitem(app.config, "PUBLIC_URL", "https://tv.isp.example/portal")
    gen_staff("mgr", role="manager")
    login(client, "mgr")
    html = client.get("/smotreshka").get_data(as_text=True)
    assert "https://tv.isp.example/portal/upsale/v3/add-subscription/ensure" in html
    assert "http://localhost/upsale" not in html


def test_importing_the_catalog_binds_services_by_external_id(smotreshka, client, processes):
    """Import creates one catalog service per platform subscription (price 0, kind unset for staff
    to fill); a second import creates nothing new."""
    gen_staff("boss", role="admin")
    login(client, "boss")
    processes.start("jobs.worker")
    row = job_done(client, post(client, "/smotreshka/import", {}, headers=HX).get_data(as_text=True))
    assert "4 new" in row
    services = db.session.scalars(select(CatalogService).filter_by(platform="smotreshka")).all()
    first = sorted((s.external_id, s.name, s.price, s.iptv_kind) for s in services)[0]
    assert first == ("101", "Лайт", Decimal("0"), None)
    row = job_done(client, post(client, "/smotreshka/import", {}, headers=HX).get_data(as_text=True))
    assert "0 new" in row
    html = client.get("/smotreshka?lang=en").get_data(as_text=True)
    catalog = html[html.index('id="smotreshka-catalog"'):html.index('id="smotreshka-drift"')]
    assert "Оптимальный" in catalog and catalog.count('class="form-error"') == 4  # the kind is still to set


def test_a_viewer_reads_but_cannot_start_jobs(smotreshka, client):
    """A viewer sees the page without action buttons, and a posted action is refused."""
    gen_staff("eye", role="viewer")
    login(client, "eye")
    html = client.get("/smotreshka").get_data(as_text=True)
    assert "/smotreshka/check" not in html
    assert post(client, "/smotreshka/check", {}).status_code == 403


def test_drift_report_lists_differences_with_fixes_and_orphans(smotreshka, tv_catalog, client, processes):
    """Someone changed the platform by hand: billing's view beside the platform's, each
    difference with its fix; an unknown platform account is listed and left alone. "Accept"
    puts the platform's subscription into billing, "push" restores billing's state."""
    gen_staff("mgr", role="manager")
    a = tv_account(tv_catalog, ["101", "201"], money="3000.00")
    assert reconcile_account("smotreshka", a.id) == "ok"
    pid = smotreshka.by_username("t_" + a.login)["id"]
    smotreshka.accounts[pid]["subscriptions"] = {"101", "202"}  # 201 lost, 202 appeared
    smotreshka._create({"username": "stranger", "email": "x@example.ru"})
    processes.start("jobs.worker")
    login(client, "mgr")
    job_done(client, post(client, "/smotreshka/drift", {"login": ""}, headers=HX).get_data(as_text=True))
    rows = {(d.kind, d.external_id or d.username) for d in db.session.scalars(select(SmotreshkaDrift))}
    assert rows == {("missing_on_platform", "201"), ("extra_on_platform", "202"), ("orphan", "stranger")}
    html = client.get("/smotreshka?lang=en").get_data(as_text=True)
    assert "Push billing" in html and "Accept into billing" in html and "stranger" in html
    extra = db.session.scalar(select(SmotreshkaDrift).filter_by(kind="extra_on_platform"))
    r = post(client, f"/smotreshka/drift/{extra.id}/accept", {}, headers=HX)
    assert r.status_code == 200
    assert sorted(s.service.external_id for s in tv.live(db.session.get(Account, a.id))) == ["101", "201", "202"]
    missing = db.session.scalar(select(SmotreshkaDrift).filter_by(kind="missing_on_platform"))
    assert post(client, f"/smotreshka/drift/{missing.id}/push", {}, headers=HX).status_code == 200
    wait_for(lambda: smotreshka.accounts[pid]["subscriptions"] == {"101", "201", "202"}, what="the push")
    assert "stranger" in {x["username"] for x in smotreshka.accounts.values()}  # never deleted
    orphan = db.session.scalar(select(SmotreshkaDrift).filter_by(kind="orphan"))
    assert post(client, f"/smotreshka/drift/{orphan.id}/push", {}, headers=HX).status_code == 422


def test_the_scheduled_resync_finds_drift_the_last_pass_did_not_see(smotreshka, tv_catalog, processes):
    """A subscription removed on the platform by hand comes back at the scheduled re-sync when
    the connection says to revert such changes, even though billing did not change (a normal
    pass would trust its last result)."""
    connect(smotreshka, platform_changes="revert")
    a = tv_account(tv_catalog, ["101"])
    assert reconcile_account("smotreshka", a.id) == "ok"
    pid = smotreshka.by_username("t_" + a.login)["id"]
    smotreshka.accounts[pid]["subscriptions"].clear()
    assert console.scheduled_resync() == 1
    processes.start("jobs.worker")
    wait_for(lambda: smotreshka.accounts[pid]["subscriptions"] == {"101"}, what="the re-sync")
    from jobs.schedules import periodic

    jobs = [j for j in periodic({"SMOTRESHKA_RESYNC_TIMES": "03:10, 12:00,19:45", "SWEEP_INTERVAL": 10})
            if j["name"].startswith("smotreshka-resync")]
    assert [j["cron"] for j in jobs] == ["10 3 * * *", "0 12 * * *", "45 19 * * *"]
    assert {j["func"].__name__ for j in jobs} == {"scheduled_resync"}


def test_the_cabinet_tv_page_is_off_until_staff_switch_it_on(smotreshka, tv_catalog, client):
    """Self-service is per connection: off, the subscriber has no TV page."""
    connect(smotreshka, self_service="off")
    a = tv_account(tv_catalog, ["101"], cabinet_login="maria")
    cabinet_login(client, "maria", "cabinet-pass-1")
    assert client.get(f"/cabinet/tv/{a.id}").status_code == 404
    assert "/cabinet/tv/" not in client.get("/cabinet/").get_data(as_text=True)
    connect(smotreshka, self_service="on")
    assert f"/cabinet/tv/{a.id}" in client.get("/cabinet/").get_data(as_text=True)
    assert client.get(f"/cabinet/tv/{a.id}").status_code == 200


def test_the_subscriber_switches_the_basic_seeing_the_price_and_the_balance_after(smotreshka, tv_catalog, client):
    """Switching «Лайт» to «Оптимальный»: the preview shows today's charge, the refund and the
    balance after; confirming does it and the money moves as shown."""
    a = tv_account(tv_catalog, ["101"], money="2000.00", cabinet_login="maria")
    cabinet_login(client, "maria", "cabinet-pass-1")
    page = client.get(f"/cabinet/tv/{a.id}?lang=en").get_data(as_text=True)
    assert "Switch to it" in page
    data = {"action": "switch", "service_id": str(tv_catalog["102"].id)}
    preview = cpost(client, f"/cabinet/tv/{a.id}/preview", data, headers=HX).get_data(as_text=True)
    after = re.sub(r"<[^>]+>", "", re.search(r"data-balance-after>(.*?)\(", preview, re.S).group(1))
    assert "Confirm" in preview and "Лайт" in preview
    # «Лайт» (300 ₽) paid for the rest of the month comes back; «Оптимальный» (600 ₽) is charged for it
    expected = db.session.get(Contract, a.contract_id).balance + rest_of_month("300.00") - rest_of_month("600.00")
    assert digits(after) == digits(f"{expected:.2f}")
    r = cpost(client, f"/cabinet/tv/{a.id}/confirm", data, headers=HX)
    assert r.status_code == 204 and r.headers["HX-Redirect"].endswith(f"/cabinet/tv/{a.id}")
    db.session.rollback()
    assert db.session.get(Contract, a.contract_id).balance == expected
    assert [s.service.external_id for s in tv.live(db.session.get(Account, a.id))] == ["102"]


def test_the_subscriber_adds_and_removes_an_additional_one_and_is_refused_without_money(smotreshka, tv_catalog,
                                                                                       client):
    """Adding «Кино» with too little money is refused before and at confirming; with money it
    works; removing it gives the unused days back."""
    short = rest_of_month("90.00") + rest_of_month("150.00") - Decimal("0.01")
    a = tv_account(tv_catalog, ["202"], money=str(short), cabinet_login="maria")
    cabinet_login(client, "maria", "cabinet-pass-1")
    data = {"action": "add", "service_id": str(tv_catalog["201"].id)}
    left = db.session.get(Contract, a.contract_id).balance
    assert left < rest_of_month("150.00")
    preview = cpost(client, f"/cabinet/tv/{a.id}/preview?lang=en", data, headers=HX).get_data(as_text=True)
    assert "not enough money" in preview and "Confirm" not in preview
    assert cpost(client, f"/cabinet/tv/{a.id}/confirm?lang=en", data, headers=HX).status_code == 409
    assert db.session.get(Contract, a.contract_id).balance == left
    from portal.billing import ledger

    ledger.payment(a.contract_id, Decimal("1000"), actor="test", external_id="more")
    db.session.commit()
    assert cpost(client, f"/cabinet/tv/{a.id}/confirm", data, headers=HX).status_code == 204
    assert sorted(s.service.external_id for s in tv.live(db.session.get(Account, a.id))) == ["201", "202"]
    remove = {"action": "remove", "service_id": str(tv_catalog["201"].id)}
    before = db.session.get(Contract, a.contract_id).balance
    assert cpost(client, f"/cabinet/tv/{a.id}/confirm", remove, headers=HX).status_code == 204
    db.session.rollback()
    assert db.session.get(Contract, a.contract_id).balance > before
    assert [s.service.external_id for s in tv.live(db.session.get(Account, a.id))] == ["202"]


def test_a_foreign_account_is_404_in_the_tv_page(smotreshka, tv_catalog, client):
    """Another subscriber's account id: 404, nothing changes."""
    tv_account(tv_catalog, ["101"], cabinet_login="maria")
    other = tv_account(tv_catalog, ["101"])
    cabinet_login(client, "maria", "cabinet-pass-1")
    assert client.get(f"/cabinet/tv/{other.id}").status_code == 404
    data = {"action": "switch", "service_id": str(tv_catalog["102"].id)}
    assert cpost(client, f"/cabinet/tv/{other.id}/confirm", data).status_code == 404


def test_staff_actions_are_audited(smotreshka, client, processes):
    """Starting the import leaves an audit entry naming the staff member."""
    gen_staff("boss", role="admin")
    login(client, "boss")
    processes.start("jobs.worker")
    job_done(client, post(client, "/smotreshka/import", {}, headers=HX).get_data(as_text=True))
    entry = db.session.scalar(select(AuditEntry).filter_by(action="smotreshka.import"))
    assert entry.actor == "staff:boss"


def test_the_account_page_panel_compares_one_account_and_pushes_or_accepts(smotreshka, tv_catalog, client, processes):
    """On a subscriber's account, staff compare it with the platform (a job; the panel updates
    itself), see billing's TV services beside the platform's, and fix it there: "push" makes the
    platform match billing, "accept" takes the platform's extra subscription into billing."""
    from flask import render_template_string

    from tests.builders import gen_account

    gen_staff("mgr", role="manager")
    a = tv_account(tv_catalog, ["101", "201"], money="3000.00")
    internet = gen_account()
    assert reconcile_account("smotreshka", a.id) == "ok"
    pid = smotreshka.by_username("t_" + a.login)["id"]
    smotreshka.accounts[pid]["subscriptions"] = {"101", "202"}  # 201 lost, 202 appeared
    processes.start("jobs.worker")
    login(client, "mgr")
    panel = client.get(f"/accounts/{a.id}/smotreshka?lang=en").get_data(as_text=True)
    assert "Лайт" in panel and "Кино" in panel and pid in panel and 'data-drift="0"' in panel
    assert client.get(f"/accounts/{internet.id}/smotreshka").status_code == 404
    with client.application.test_request_context():
        assert render_template_string('{% include "admin/smotreshka/_account_tv.html" %}', a=internet).strip() == ""

    html = post(client, f"/accounts/{a.id}/smotreshka/compare?lang=en", {}, headers=HX).get_data(as_text=True)
    url = re.search(r'hx-get="([^"]+)"', html).group(1).replace("&amp;", "&")
    panel = wait_for(lambda: (p := client.get(url).get_data(as_text=True)) and 'hx-trigger' not in p.split(">")[0]
                     and p, timeout=60, what="the comparison")
    assert 'data-state="finished"' in panel and 'data-drift="2"' in panel
    assert 'data-kind="missing_on_platform"' in panel and 'data-kind="extra_on_platform"' in panel
    # both directions for each: push or end in billing for the missing one, push or accept for the extra one
    assert panel.count('value="account"') == 4 and "End in billing" in panel

    extra = db.session.scalar(select(SmotreshkaDrift).filter_by(account_id=a.id, kind="extra_on_platform"))
    r = post(client, f"/smotreshka/drift/{extra.id}/accept", {"panel": "account"}, headers=HX)
    assert r.status_code == 200 and 'id="account-tv"' in r.get_data(as_text=True)
    assert sorted(s.service.external_id for s in tv.live(db.session.get(Account, a.id))) == ["101", "201", "202"]
    r = post(client, f"/accounts/{a.id}/smotreshka/push", {}, headers=HX)
    assert r.status_code == 200 and 'id="account-tv"' in r.get_data(as_text=True)
    wait_for(lambda: smotreshka.accounts[pid]["subscriptions"] == {"101", "201", "202"}, what="the push")
    # the pass the accept queued may still list 201 as it found it; the push's pass clears it
    wait_for(lambda: 'data-drift="0"' in client.get(f"/accounts/{a.id}/smotreshka?lang=en").get_data(as_text=True),
             timeout=60, what="an empty drift list after the push")
    assert db.session.scalar(select(AuditEntry).filter_by(action="smotreshka.push")).actor == "staff:mgr"


def test_viewers_see_the_account_panel_without_its_buttons(smotreshka, tv_catalog, client):
    """Read-only staff see the TV panel but cannot compare or push."""
    gen_staff("viewer", role="viewer")
    a = tv_account(tv_catalog, ["101"])
    login(client, "viewer")
    panel = client.get(f"/accounts/{a.id}/smotreshka?lang=en").get_data(as_text=True)
    assert "Лайт" in panel and "Compare with the platform" not in panel
    assert post(client, f"/accounts/{a.id}/smotreshka/push", {}, headers=HX).status_code == 403
