"""Fixtures for the «Интерсвязь» tests: the emulator with the portal's connection to it, the
intercom agent, service and tariff, and builders of intercom accounts (flats)."""
from __future__ import annotations

from decimal import Decimal

import pytest

from portal.billing import accounts as acc
from portal.billing import directory, ledger
from portal.extensions import db
from portal.models import ExtraFieldDefinition
from portal.platforms.connections import save_connection
from portal.platforms.intercom.emulator import IntercomEmulator
from tests.builders import gen_agent, gen_contract, gen_service, gen_subscriber, gen_tariff

TOKEN = "icom-Secret-Key-42"


@pytest.fixture
def intercom_emulator():
    e = IntercomEmulator(token=TOKEN).start()
    yield e
    e.stop()


@pytest.fixture
def intercom(ctx, intercom_emulator):
    """The emulator with the stored connection (API key encrypted as the password), and the
    billing side: the isvyaz_login field, an intercom agent, service and tariff."""
    save_connection("intercom", url=intercom_emulator.url, password=TOKEN, actor="test")
    if db.session.query(ExtraFieldDefinition).filter_by(name="isvyaz_login").first() is None:
        directory.save_extra_field({"name": "isvyaz_login", "title": "Логин «Интерсвязь»",
                                    "pattern": r"[A-Za-z0-9_.-]{3,64}"}, actor="test")
    db.session.commit()
    setup = Setup(intercom_emulator)
    return setup


class Setup:
    def __init__(self, emulator):
        self.emulator = emulator
        self.agent = gen_agent(kind="intercom", platform="intercom")
        self.service = gen_service("60.00", platform="intercom", external_id="intercom")
        self.tariff = gen_tariff([self.service], name=f"Домофон {id(self)}")

    def flat(self, contract=None, login="ivanov", flat="1", house="ул. Ленина, 5", service=True, activate=True,
             **kw):
        """An account (one flat) with this isvyaz_login, activated, with the intercom service."""
        contract = contract or self.contract()
        data = {"contract_id": contract.id, "login": kw.pop("account_login", f"dom{next(_seq)}"),
                "agent_id": self.agent.id, "tariff_id": self.tariff.id, "house": house, "flat": flat,
                "extra": {"isvyaz_login": login} if login else {}}
        data.update(kw)
        a = acc.create_account(data, actor="test")
        db.session.commit()
        if activate:
            acc.activate(a, actor="test")
            db.session.commit()
        if service:
            acc.assign_service(a, {"service_id": self.service.id}, actor="test")
            db.session.commit()
        return a

    def contract(self, money="1000.00", full_name="Иванов Иван Иванович", phones=("+7 900 111-22-33",)):
        """A subscriber card and its contract with money on it (so nothing is blocked by balance)."""
        c = gen_contract(gen_subscriber(full_name=full_name, phones=list(phones)))
        if Decimal(money):
            ledger.payment(c.id, Decimal(money), actor="test", external_id=f"pay-{c.id}")
            db.session.commit()
        return c

    def profile(self, login):
        return self.emulator.profiles.get(login)

    def level(self, login, account):
        from portal.platforms.intercom.sync import level_of

        p = self.profile(login)
        a = p and p["addresses"].get(str(account.id))
        return level_of(a["access"]) if a else "absent"


def _counter():
    n = 0
    while True:
        n += 1
        yield n


_seq = _counter()


@pytest.fixture
def worker(intercom, processes):
    """The intercom set-up with a real RQ worker (a subprocess) working the queues."""
    processes.start("jobs.worker")
    return intercom


def settled(*accounts, state="ok", timeout=30):
    """Wait until every given account's intercom sync has run to ``state`` with nothing left
    in the outbox; returns their sync states."""
    from sqlalchemy import func, select

    from portal.models import OutboxEvent, SyncState
    from tests.platform_fixtures import wait_for

    ids = [a if isinstance(a, int) else a.id for a in accounts]

    def check():
        waiting = db.session.scalar(select(func.count()).select_from(OutboxEvent).where(
            OutboxEvent.account_id.in_(ids), OutboxEvent.platform == "intercom", OutboxEvent.processed_at.is_(None)))
        states = {st.account_id: st for st in db.session.scalars(
            select(SyncState).where(SyncState.account_id.in_(ids), SyncState.platform == "intercom"))}
        if waiting or len(states) != len(ids) or any(st.state != state for st in states.values()):
            return None
        return {i: {"state": st.state, "actual": st.actual, "error": st.last_error} for i, st in states.items()}

    return wait_for(check, timeout=timeout, what=f"intercom sync of {ids} to be {state}")
