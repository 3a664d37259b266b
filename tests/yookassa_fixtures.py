"""Fixtures for the online payment tests: the portal live on a free port, the ЮKassa emulator
pointed at it, the shop settings and a subscriber blocked by balance."""
from __future__ import annotations

import threading

import pytest
from werkzeug.serving import make_server

from portal.billing import online_payments as op
from portal.extensions import db
from portal.payments.yookassa.emulator import YooKassaEmulator
from tests.builders import gen_account, gen_agent, gen_contract, gen_subscriber, gen_tariff
from tests.helpers import CABINET_PASSWORD as PASSWORD

SHOP_ID, SECRET = "501234", "live_Sekret-Key-42"


@pytest.fixture
def server(app, monkeypatch):
    monkeypatch.setitem(app.config, "SESSION_COOKIE_SECURE", False)
    srv = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()


@pytest.fixture
def emu(server):
    e = YooKassaEmulator(shop_id=SHOP_ID, secret=SECRET, webhook_url=f"{server}/pay/yookassa/notify").start()
    e.notify = False  # each test sends the notifications itself, when it means to
    yield e
    e.stop()


def set_shop(emu, **kw):
    data = {"api_url": emu.api_url, "shop_id": SHOP_ID, "secret": SECRET, "vat_code": "4", "receipt": True,
            "payment_subject": "service", "payment_mode": "full_prepayment", "min_sum": "10", "max_sum": "15000",
            "timeout": "5", "enabled": True}
    data.update(kw)
    s = op.save_shop(data, actor="test")
    db.session.commit()
    return s


def debtor(login="anna", price="300.00"):
    """A cabinet subscriber blocked by balance (activated without money)."""
    s = gen_subscriber(full_name=f"Абонент {login}", cabinet_login=login, cabinet_password=PASSWORD,
                       email=f"{login}@example.ru")
    c = gen_contract(s)
    a = gen_account(contract=c, tariff=gen_tariff([], monthly_fee=price), agent=gen_agent(), login=login)
    return c, a
