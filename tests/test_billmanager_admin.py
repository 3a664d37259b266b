"""BILLmanager pages: the handler form, the lists, the import wizard, services, tasks and the
cabinet's hosting order (Flask test client; jobs on the real worker where the seller is called)."""
from __future__ import annotations

import re
from decimal import Decimal

from babel.numbers import format_currency
from flask_babel import get_locale
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import (
    AuditEntry,
    BmHandler,
    BmService,
    BmTariff,
    Contract,
    DataCenter,
    Department,
    LedgerEntry,
    Task,
)
from tests.billmanager_fixtures import SELLER_LOGIN, SELLER_PASSWORD, WORKER_ENV, imported_tariff, make_handler
from tests.billmanager_fixtures import finished_job as _finished
from tests.builders import gen_staff, subscriber_with_account
from tests.helpers import HX, cabinet_login, field_error, login, post
from tests.helpers import form_token as token
from tests.platform_fixtures import wait_for


def _lists():
    dept = Department(name="Хостинг")
    dc = DataCenter(name="Москва")
    db.session.add_all([dept, dc])
    db.session.commit()
    return dept.id, dc.id


def test_a_bad_handler_form_names_the_fields_and_saves_nothing(app, client, ctx):
    """An admin leaves the URL and the department out: both are named, no handler appears."""
    gen_staff("boss")
    login(client, "boss")
    r = post(client, "/billmanager/handlers/new", {"form_sent": "1", "name": "VDS", "itemtype": "vds",
                                                   "url": "ftp://x", "username": "u", "password": "p"})
    html = r.get_data(as_text=True)
    assert r.status_code == 422 and field_error(html, "url") and field_error(html, "department_id")
    assert db.session.scalar(select(func.count()).select_from(BmHandler)) == 0


def test_next_saves_the_handler_and_shows_the_selling_balance(app, client, ctx, seller, processes):
    """"Next" stores the handler (password encrypted, never shown again) and the check job
    shows the selling account's balance."""
    processes.start("jobs.worker", **WORKER_ENV)
    dept, dc = _lists()
    gen_staff("boss")
    login(client, "boss")
    r = post(client, "/billmanager/handlers/new", {
        "form_sent": "1", "name": "VDS Москва", "itemtype": "vds", "url": seller.url + "/", "username": SELLER_LOGIN,
        "password": SELLER_PASSWORD, "datacenter_id": str(dc), "department_id": str(dept), "sort": "1",
        "min_balance": "100"})
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and SELLER_PASSWORD not in html
    # the seller's balance as Babel writes it in the page's language, not "1000.00 RUB"
    assert format_currency(Decimal("1000.00"), "RUB", locale=get_locale()) in _finished(client, html)
    h = db.session.scalar(select(BmHandler))
    assert h.url == seller.url and h.enabled and h.password_enc and SELLER_PASSWORD not in h.password_enc
    assert h.last_balance == Decimal("1000.00")
    page = client.get(f"/billmanager/handlers/{h.id}").get_data(as_text=True)
    assert SELLER_PASSWORD not in page and 'name="password" type="password" value=""' in page
    assert not db.session.scalar(select(AuditEntry).where(AuditEntry.after.cast(db.String).contains(SELLER_PASSWORD)))


def test_wrong_credentials_show_the_sellers_message(app, client, ctx, seller, processes):
    """A wrong password: the check fails with the seller's own words."""
    processes.start("jobs.worker", **WORKER_ENV)
    h = make_handler(seller, password="wrong-one")
    gen_staff("boss")
    login(client, "boss")
    html = _finished(client, post(client, f"/billmanager/handlers/{h.id}/check", {}, headers=HX).get_data(as_text=True))
    assert 'data-state="failed"' in html and "Invalid username or password" in html


def test_data_centers_and_departments_are_small_editable_lists(app, client, ctx, seller):
    """Add, rename; a department a handler uses cannot be deleted."""
    gen_staff("boss")
    login(client, "boss")
    post(client, "/billmanager/lists/departments", {"name": "Поддержка"})
    d = db.session.scalar(select(Department))
    post(client, f"/billmanager/lists/departments/{d.id}", {"name": "Отдел хостинга"})
    assert db.session.get(Department, d.id).name == "Отдел хостинга"
    make_handler(seller)
    r = post(client, f"/billmanager/lists/departments/{d.id}/delete", {})
    assert r.status_code == 422 and db.session.get(Department, d.id) is not None


def test_the_import_wizard_creates_a_disabled_tariff_staff_reprice_and_enable(app, client, ctx, seller, processes):
    """Read the price list (job), pick VDS-1 in Amsterdam: a disabled tariff with 3 periods;
    reprice to 499 and enable."""
    processes.start("jobs.worker", **WORKER_ENV)
    h = make_handler(seller)
    gen_staff("boss")
    login(client, "boss")
    html = _finished(client, post(client, f"/billmanager/import/{h.id}/fetch", {}, headers=HX).get_data(as_text=True))
    assert "vds, vhost" in html
    page = client.get(f"/billmanager/import?handler={h.id}").get_data(as_text=True)
    assert "VDS-1" in page and "VDS-2" in page and "Hosting Start" not in page and "Amsterdam DC" in page
    r = post(client, f"/billmanager/import/{h.id}/101", {"datacenter": "2"}, follow_redirects=True)
    t = db.session.scalar(select(BmTariff))
    assert (t.enabled, t.remote_datacenter_name, len(t.periods)) == (False, "Amsterdam DC", 3)
    assert format_currency(Decimal("855.00"), "RUB", locale=get_locale()) in r.get_data(as_text=True)  # Babel's
    post(client, f"/billmanager/tariffs/{t.id}", {"name": "VDS Старт", "price": "499", "enabled": "1"})
    db.session.expire_all()
    t = db.session.get(BmTariff, t.id)
    assert (t.name, t.price, t.enabled) == ("VDS Старт", Decimal("499.00"), True)


def test_a_subscriber_orders_hosting_in_the_cabinet(app, client, ctx, seller, processes):
    """Anna orders VDS-1 at 450 ₽: money leaves her contract at once, the service shows up as
    active after the worker has ordered it."""
    processes.start("jobs.worker", **WORKER_ENV)
    t = imported_tariff(make_handler(seller), price="450.00")
    s, c, a = subscriber_with_account("anna", paid="1000.00")
    cid, aid = c.id, a.id
    cabinet_login(client, "anna")
    assert 'href="/cabinet/hosting"' in client.get("/cabinet/").get_data(as_text=True)
    assert "VDS-1" in client.get("/cabinet/hosting").get_data(as_text=True)
    r = client.post("/cabinet/hosting/order", data={"csrf_token": token(client, "/cabinet/hosting"),
                                                    "tariff_id": str(t.id), "account_id": str(aid)})
    assert r.status_code == 303
    assert db.session.get(Contract, cid).balance < Decimal("1000.00")
    svc_id = db.session.scalar(select(BmService.id))
    wait_for(lambda: db.session.get(BmService, svc_id).state == "ordered", what="the order")
    wait_for(lambda: seller.status(db.session.get(BmService, svc_id).remote_id) == 2, what="activation")
    from portal.platforms.billmanager import orders
    orders.poll()
    assert "badge-active" in client.get("/cabinet/hosting").get_data(as_text=True)


def test_the_cabinet_refuses_a_foreign_account_and_a_short_balance(app, client, ctx, seller):
    """Paying from someone else's account is a 404; without money the order names the tariff
    field and nothing is charged."""
    t = imported_tariff(make_handler(seller), price="450.00")
    _, _, other = subscriber_with_account("boris", paid="5000.00")
    _, c, a = subscriber_with_account("anna", paid="100.00")
    cid, aid, oid = c.id, a.id, other.id
    cabinet_login(client, "anna")
    csrf = token(client, "/cabinet/hosting")
    assert client.post("/cabinet/hosting/order", data={"csrf_token": csrf, "tariff_id": str(t.id),
                                                       "account_id": str(oid)}).status_code == 404
    r = client.post("/cabinet/hosting/order", data={"csrf_token": csrf, "tariff_id": str(t.id), "account_id": str(aid)})
    assert r.status_code == 422 and 'data-field="tariff_id"' in r.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(BmService)) == 0
    assert db.session.scalar(select(func.count()).select_from(LedgerEntry).where(
        LedgerEntry.contract_id == cid, LedgerEntry.kind == "charge")) == 0


def test_tasks_list_shows_department_state_and_link_and_closes(app, client, ctx, seller, processes):
    """A short seller balance opens a task for the handler's department; the task list links
    to the service and a manager closes it."""
    processes.start("jobs.worker", **WORKER_ENV)
    seller.set_balance(SELLER_LOGIN, "10.00")
    h = make_handler(seller)
    t = imported_tariff(h)
    gen_staff("mgr", role="manager")
    login(client, "mgr")
    _s, _c, a = subscriber_with_account("anna", paid="1000.00")
    r = post(client, "/billmanager/services/order", {"login": a.login, "tariff_id": str(t.id)})
    assert r.status_code == 303
    task = wait_for(lambda: db.session.scalar(select(Task)), what="the task")
    page = client.get("/tasks").get_data(as_text=True)
    # the stored English title reads in the page's language (ctx keeps whichever came first)
    title = (f"Заказ услуги №{task.object_id} ждёт: пополните счёт у поставщика" if 'lang="ru"' in page
             else task.title)
    assert title in page and "Хостинг" in page and f"#svc-{task.object_id}" in page
    shown = format_currency(Decimal("10.00"), "RUB", locale=get_locale())  # the seller's balance, Babel's
    assert shown in client.get("/billmanager/services").get_data(as_text=True)
    post(client, f"/tasks/{task.id}/close", {})
    assert db.session.get(Task, task.id).state == "done"


def test_a_viewer_reads_but_cannot_change_handlers(app, client, ctx, seller):
    """A viewer sees the handlers; posting the form is forbidden."""
    h = make_handler(seller)
    gen_staff("v", role="viewer")
    login(client, "v")
    assert h.name in client.get("/billmanager/handlers").get_data(as_text=True)
    assert post(client, f"/billmanager/handlers/{h.id}", {"name": "x"}).status_code == 403


def test_the_services_list_finds_by_login_and_state(app, client, ctx, seller):
    """Staff type part of a login or pick a state: only those services are listed."""
    from portal.platforms.billmanager import orders

    t = imported_tariff(make_handler(seller))
    _s, _c, anna = subscriber_with_account("anna", paid="1000.00")
    _s, _c, boris = subscriber_with_account("boris", paid="1000.00")
    orders.place_order(anna, t, domain="anna-shop.ru", actor="test")
    orders.place_order(boris, t, domain="boris-shop.ru", actor="test")
    db.session.commit()
    gen_staff("boss")
    login(client, "boss")
    rows = lambda query: re.findall(r'<tr id="svc-\d+">.*?</tr>', client.get(f"/billmanager/services?{query}")  # noqa: E731
                                    .get_data(as_text=True), re.S)
    found = rows("q=anna-sh")
    assert len(found) == 1 and "anna-shop.ru" in found[0]
    assert len(rows("state=pending")) == 2 and rows("state=ordered") == []


def test_a_double_click_on_order_orders_and_pays_once(app, client, ctx, seller):
    """Anna's order form is sent twice (a double click): one service, one charge."""
    t = imported_tariff(make_handler(seller), price="450.00")
    _, c, a = subscriber_with_account("anna", paid="1000.00")
    cid, aid = c.id, a.id
    cabinet_login(client, "anna")
    page = client.get("/cabinet/hosting").get_data(as_text=True)
    nonce = re.search(r'name="nonce" value="([0-9a-f]+)"', page).group(1)
    data = {"csrf_token": token(client, "/cabinet/hosting"), "tariff_id": str(t.id), "account_id": str(aid),
            "nonce": nonce}
    assert client.post("/cabinet/hosting/order", data=data).status_code == 303
    assert client.post("/cabinet/hosting/order", data=data).status_code == 303
    assert db.session.scalar(select(func.count()).select_from(BmService)) == 1
    assert db.session.scalar(select(func.count()).select_from(LedgerEntry).where(
        LedgerEntry.contract_id == cid, LedgerEntry.kind == "charge")) == 1
