"""Fixtures for the BILLmanager tests: a selling BILLmanager emulator with a funded reseller
account, a handler pointed at it, and an enabled imported tariff."""
from __future__ import annotations

import re
from decimal import Decimal

import pytest

from portal.extensions import db
from portal.models import BmHandler, DataCenter, Department
from portal.platforms.billmanager import handlers, importer
from portal.platforms.billmanager.emulator import SellingBillmanager
from tests.helpers import HX
from tests.platform_fixtures import wait_for

SELLER_LOGIN, SELLER_PASSWORD = "reseller@example.com", "Seller-Pa55word"
# the worker: short timeouts so a "timeout after debit" takes a second, not thirty
WORKER_ENV = {"BILLMANAGER_ORDER_TIMEOUT": "1", "BILLMANAGER_TIMEOUT": "3", "BILLMANAGER_ORDER_LOOKUP": "2"}


@pytest.fixture
def seller():
    s = SellingBillmanager(progress_seconds=0.3, answer_delay=2.0)
    s.add_account(SELLER_LOGIN, SELLER_PASSWORD, "1000.00").load_pricelists().start()
    yield s
    s.stop()


def make_handler(seller, name="VDS Москва", itemtype="vds", min_balance="100.00", sort=0,
                 username=SELLER_LOGIN, password=SELLER_PASSWORD) -> BmHandler:
    dept = db.session.query(Department).first() or handlers.save_named(Department, "Хостинг", actor="test")
    dc = db.session.query(DataCenter).first() or handlers.save_named(DataCenter, "Москва", actor="test")
    h = handlers.save_handler({"name": name, "itemtype": itemtype, "url": seller.url, "username": username,
                               "password": password, "datacenter_id": dc.id, "department_id": dept.id,
                               "sort": sort, "min_balance": min_balance}, actor="test")
    db.session.commit()
    return h


def imported_tariff(handler, remote_id="101", datacenter="1", price=None, enabled=True):
    """Read the price list (as the wizard's job does) and import one tariff, enabled."""
    importer.fetch_pricelist(handler.id, actor="test")
    handler = db.session.get(BmHandler, handler.id)
    t = importer.import_tariff(handler, remote_id, datacenter, actor="test")
    importer.update_tariff(t, {"price": price, "enabled": enabled}, actor="test")
    db.session.commit()
    return t


def D(x) -> Decimal:
    return Decimal(x)


def finished_job(client, html: str) -> str:
    """Poll the progress row in the answer until its job has finished; its final HTML."""
    url = re.search(r'hx-get="([^"]+)"', html).group(1).replace("&amp;", "&")
    return wait_for(lambda: (lambda h: h if 'data-state="finished"' in h or 'data-state="failed"' in h else None)(
        client.get(url, headers=HX).get_data(as_text=True)), what="the job")
