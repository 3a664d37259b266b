"""BILLmanager admin pages for issue 14: a tariff's handlers in the import wizard and on the
tariff page, why an order waits, and the "Renew now" button (test client; the real worker)."""
from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

from sqlalchemy import func, select

from portal.billing import clock, ledger
from portal.billing.charging import charge
from portal.extensions import db
from portal.models import BmTariff
from portal.platforms.billmanager import handlers, orders
from tests.billmanager_fixtures import WORKER_ENV, imported_tariff, make_handler
from tests.billmanager_fixtures import finished_job as _finished
from tests.builders import gen_account, gen_contract, gen_staff
from tests.helpers import HX, login, post


def test_the_wizard_and_the_tariff_page_set_the_handlers_that_sell_it(app, client, ctx, seller):
    """Two VDS handlers on one seller: the wizard imports a tariff sold by both, the second
    first; the tariff page changes it to the first alone; a priority that is not a number is
    refused naming the field and changes nothing."""
    first = make_handler(seller, name="VDS 1")
    second = make_handler(seller, name="VDS 2")
    vhost = make_handler(seller, name="Хостинг", itemtype="vhost")
    from portal.platforms.billmanager import importer

    importer.fetch_pricelist(first.id, actor="test")
    db.session.commit()
    gen_staff("boss")
    login(client, "boss")
    page = client.get(f"/billmanager/import?handler={first.id}").get_data(as_text=True)
    assert f'name="prio_{second.id}"' in page and f'name="prio_{vhost.id}"' not in page
    post(client, f"/billmanager/import/{first.id}/101",
         {"datacenter": "1", f"prio_{first.id}": "2", f"prio_{second.id}": "1"})
    t = db.session.scalar(select(BmTariff))
    assert [h.name for h in handlers.tariff_handlers(t)] == ["VDS 2", "VDS 1"]
    html = client.get(f"/billmanager/tariffs/{t.id}").get_data(as_text=True)
    assert re.search(rf'name="prio_{second.id}" type="number" min="1" max="99" value="1"', html)
    r = post(client, f"/billmanager/tariffs/{t.id}", {"name": t.name, "price": "300", f"prio_{first.id}": "x"})
    assert r.status_code == 422 and 'data-field="handler_ids"' in r.get_data(as_text=True)
    db.session.expire_all()
    assert [h.name for h in handlers.tariff_handlers(db.session.get(BmTariff, t.id))] == ["VDS 2", "VDS 1"]
    post(client, f"/billmanager/tariffs/{t.id}", {"name": t.name, "price": "300", f"prio_{first.id}": "1",
                                                  f"prio_{second.id}": ""})
    db.session.expire_all()
    assert [h.name for h in handlers.tariff_handlers(db.session.get(BmTariff, t.id))] == ["VDS 1"]


def test_the_services_page_says_why_an_order_waits(app, client, ctx, seller):
    """An order waiting for an unreadable balance says so, with its next try; not "top up"."""
    t = imported_tariff(make_handler(seller))
    c = gen_contract()
    ledger.payment(c.id, Decimal("1000.00"), actor="test", external_id=f"p{c.id}")
    db.session.commit()
    svc_id = orders.place_order(gen_account(contract=c), t, actor="test").id
    db.session.commit()
    seller.fail("*", "down", times=None)
    assert orders.order_service(svc_id) == "pending"
    gen_staff("boss")
    login(client, "boss")
    client.get("/?lang=en")
    html = client.get("/billmanager/services").get_data(as_text=True)
    row = re.search(rf'<tr id="svc-{svc_id}">(.*?)</tr>', html, re.S).group(1)
    assert 'data-wait="balance_unknown"' in row and "top up" not in row.lower()


def test_renew_now_renews_once_even_when_clicked_twice(app, client, ctx, seller, processes, monkeypatch):
    """Staff press "Renew now" for next month twice: both jobs finish, the seller renewed once."""
    processes.start("jobs.worker", **WORKER_ENV)
    monkeypatch.setitem(app.config, "BILLMANAGER_ORDER_LOOKUP", 2)
    t = imported_tariff(make_handler(seller))
    c = gen_contract()
    ledger.payment(c.id, Decimal("5000.00"), actor="test", external_id=f"p{c.id}")
    db.session.commit()
    svc_id = orders.place_order(gen_account(contract=c), t, actor="test").id
    db.session.commit()
    assert orders.order_service(svc_id) == "ordered"
    first = clock.month_start(clock.today())
    nxt = date(first.year + (first.month == 12), first.month % 12 + 1, 1)
    charge(nxt)
    db.session.commit()
    gen_staff("boss")
    login(client, "boss")
    one = post(client, "/billmanager/services/renew", {"date": nxt.isoformat()}, headers=HX).get_data(as_text=True)
    two = post(client, "/billmanager/services/renew", {"date": nxt.isoformat()}, headers=HX).get_data(as_text=True)
    done = _finished(client, one) + _finished(client, two)
    assert "renewed 1" in done and "renewed 0" in done
    assert sum(1 for c in seller.calls if c["func"] == "service.prolong") == 1
    bad = post(client, "/billmanager/services/renew", {"date": "31.12.2026"}, headers=HX)
    assert bad.status_code == 422 and 'data-field="date"' in bad.get_data(as_text=True)


def test_a_double_click_and_a_second_tab_over_real_http_order_and_pay_once(app, ctx, seller, monkeypatch):
    """Over real HTTP, a manager's order form is sent twice at once (a double click: one
    nonce) and once more from a second tab (another nonce) on a contract with money for one
    VDS: one order, one charge; the second tab is told to top up."""
    import threading

    import requests
    from werkzeug.serving import make_server

    from portal.models import BmService, LedgerEntry

    monkeypatch.setitem(app.config, "SESSION_COOKIE_SECURE", False)  # plain http here: the cookie must travel
    t = imported_tariff(make_handler(seller), price="450.00")
    c = gen_contract()
    ledger.payment(c.id, Decimal("500.00"), actor="test", external_id=f"p{c.id}")
    db.session.commit()
    a = gen_account(contract=c)
    login_name, tariff_id, contract_id, account_id = a.login, t.id, c.id, a.id
    gen_staff("manager1", role="manager")
    db.session.commit()
    db.session.remove()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        s = requests.Session()
        page = s.get(f"{base}/login").text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        s.post(f"{base}/login", data={"login": "manager1", "password": "password123", "csrf_token": csrf})
        page = s.get(f"{base}/billmanager/services").text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        forms = [{"csrf_token": csrf, "login": login_name, "tariff_id": str(tariff_id), "nonce": nonce}
                 for nonce in ("tab-one", "tab-one", "tab-two")]
        start, codes = threading.Barrier(len(forms)), []

        def send(form):
            start.wait()
            r = s.post(f"{base}/billmanager/services/order", data=form, allow_redirects=False)
            codes.append((form["nonce"], r.status_code))

        threads = [threading.Thread(target=send, args=(f,)) for f in forms]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    finally:
        server.shutdown()
    # whichever tab came first ordered; a double click answers like its first click; the other
    # tab is told to top up (422)
    won = "tab-one" if ("tab-one", 303) in codes else "tab-two"
    assert sorted(codes) == sorted((n, 303 if n == won else 422) for n in ("tab-one", "tab-one", "tab-two"))
    assert db.session.scalar(select(func.count()).select_from(BmService).where(BmService.account_id == account_id)) == 1
    charges = db.session.scalars(select(LedgerEntry).where(LedgerEntry.contract_id == contract_id,
                                                           LedgerEntry.amount < 0)).all()
    assert len(charges) == 1
