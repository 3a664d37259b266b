"""Fixtures for the «Смотрёшка» tests: the emulator, the stored connection to it, TV services
bound to its subscriptions, accounts in the three ways of selling TV, and a live portal server
(``live`` from tests/browser_fixtures.py, a thread) for the emulator's subscriber app to call."""
from __future__ import annotations

import calendar
import threading
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

import pytest
from werkzeug.serving import make_server

from portal.billing import clock, ledger
from portal.extensions import db
from portal.platforms.connections import save_connection
from portal.platforms.reconcile import reconcile_account
from portal.platforms.smotreshka.emulator import SmotreshkaEmulator
from tests.builders import gen_account, gen_agent, gen_contract, gen_service, gen_subscriber, gen_tariff

CALLBACK_LOGIN, CALLBACK_PASSWORD = "lifestream", "cb-Secret-77"
CATALOG = [{"id": "101", "name": "Лайт"}, {"id": "102", "name": "Оптимальный"},
           {"id": "201", "name": "Кино"}, {"id": "202", "name": "Детский"}]


@pytest.fixture
def smotreshka_emulator():
    emu = SmotreshkaEmulator(catalog=CATALOG).start()
    yield emu
    emu.stop()


def connect(emu, **options):
    opts = {"login_prefix": "t_", "upsale_allowed_ips": "127.0.0.1/32", "self_service": "on", **options}
    save_connection("smotreshka", url=emu.url, login=CALLBACK_LOGIN, password=CALLBACK_PASSWORD, options=opts,
                    actor="test")
    db.session.commit()


@pytest.fixture
def smotreshka(ctx, smotreshka_emulator):
    """The emulator with the portal's connection to it stored."""
    connect(smotreshka_emulator)
    return smotreshka_emulator


@pytest.fixture
def tv_catalog(ctx):
    """Catalog services bound to the emulator's subscriptions: two basics, two additional."""
    return {
        "101": gen_service("300.00", name="Лайт", platform="smotreshka", external_id="101", iptv_kind="basic"),
        "102": gen_service("600.00", name="Оптимальный", platform="smotreshka", external_id="102", iptv_kind="basic"),
        "201": gen_service("150.00", name="Кино", platform="smotreshka", external_id="201", iptv_kind="additional"),
        "202": gen_service("90.00", name="Детский", platform="smotreshka", external_id="202", iptv_kind="additional"),
    }


def tv_account(tv_catalog, services=(), money="1000.00", email=None, cabinet_login=None, **kw):
    """Way 1: a ``services`` tariff with every TV service, on a ``services`` agent of the platform."""
    subscriber = gen_subscriber(email=email, **({"cabinet_login": cabinet_login, "cabinet_password": "cabinet-pass-1"}
                                               if cabinet_login else {}))
    contract = gen_contract(subscriber)
    if Decimal(money):
        ledger.payment(contract.id, Decimal(money), actor="test", external_id=f"pay-{contract.id}")
        db.session.commit()
    tariff = kw.pop("tariff", None) or gen_tariff(list(tv_catalog.values()), kind="services")
    agent = kw.pop("agent", None) or gen_agent("services", platform="smotreshka")
    return gen_account(contract=contract, tariff=tariff, agent=agent, services=[tv_catalog[s] for s in services], **kw)


# A day to buy on: 17 November 2026, in a month of 30 days, so 14 days are left of it.
FIXED_DAY = date(2026, 11, 17)


def rest_of_month(price: str, day: date | None = None) -> Decimal:
    """What a monthly-in-advance service taken on ``day`` costs (the charging rules, worked out
    here by hand: price x days left / days in the month, half up)."""
    day = day or clock.today()
    dim = calendar.monthrange(day.year, day.month)[1]
    return (Decimal(price) * (dim - day.day + 1) / dim).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


@pytest.fixture
def live_fixed(app):
    """The portal over real HTTP where billing's calendar says FIXED_DAY, in every request's
    thread and in the test's own; yields the URL."""
    def on_fixed_day(environ, start_response):
        with clock.as_of(FIXED_DAY):
            return app(environ, start_response)

    server = make_server("127.0.0.1", 0, on_fixed_day, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    with clock.as_of(FIXED_DAY):
        yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


AUTH = (CALLBACK_LOGIN, CALLBACK_PASSWORD)


def linked(emu, tv_catalog, services=("101",), money="1000.00", **kw):
    """A TV account already on the platform (so the app knows its id)."""
    account = tv_account(tv_catalog, services, money=money, **kw)
    assert reconcile_account("smotreshka", account.id) == "ok"
    return account, emu.by_username("t_" + account.login)["id"]
