"""A hosting order resold through BILLmanager is a purchase like the others (issue 19): the
subscriber is told "bought" once, in the order's own transaction, whether they ordered in the
cabinet or staff ordered for them, however often the form is sent (the selling BILLmanager's
emulator over HTTP, the real SMTP server)."""
from __future__ import annotations

from decimal import Decimal

import pytest
from babel.numbers import format_currency
from sqlalchemy import select

from portal.billing.errors import BillingError
from portal.extensions import db
from portal.models import Account, BmService, Contract, Notice, NotificationDelivery
from portal.notifications import delivery
from portal.platforms.billmanager import console, orders
from tests.billmanager_fixtures import imported_tariff, make_handler
from tests.builders import subscriber_with_account
from tests.helpers import cabinet_login
from tests.helpers import form_token as token

pytestmark = pytest.mark.integration


def _bought(contract_id: int) -> list[Notice]:
    db.session.expire_all()
    return list(db.session.scalars(select(Notice).where(Notice.contract_id == contract_id,
                                                        Notice.event == "service_bought").order_by(Notice.id)))


def test_a_cabinet_hosting_order_tells_the_subscriber_once(app, ctx, client, seller, smtp_server):
    """Anna orders VDS-1 at 450 ₽ in the cabinet and sends the form twice: is she told once that
    she bought it, with its price, by e-mail?"""
    t = imported_tariff(make_handler(seller), price="450.00")
    s, c, a = subscriber_with_account("anna", paid="1000.00")
    s.email = "anna@example.test"
    db.session.commit()
    cid, aid, login = c.id, a.id, a.login
    cabinet_login(client, "anna")
    form = {"csrf_token": token(client, "/cabinet/hosting"), "tariff_id": str(t.id), "account_id": str(aid),
            "nonce": "order-form-1"}
    for _ in range(2):
        assert client.post("/cabinet/hosting/order", data=form).status_code == 303
    [n] = _bought(cid)
    svc = db.session.scalar(select(BmService))
    assert n.dedup_key == f"service_bought:{svc.assigned_service_id}" and n.account_id == aid
    assert (n.data["service_name"], n.data["price"], n.data["account_login"]) == ("VDS-1", "450.00", login)
    delivery.prepare()
    [d] = db.session.scalars(select(NotificationDelivery).where(NotificationDelivery.notice_id == n.id)).all()
    assert delivery.deliver(d.id) == "sent"
    [m] = [m for m in smtp_server.messages if "VDS-1" in m["subject"]]
    balance = format_currency(db.session.get(Contract, cid).balance, "RUB", locale="ru")
    assert m["subject"] == "Покупка: «VDS-1»"
    assert f"Вы подключили «VDS-1» (BILLmanager) для учётной записи {login} " in m["body"]  # not "(billmanager)"
    assert f"за {format_currency(Decimal('450.00'), 'RUB', locale='ru')}. Сумма списывается с баланса договора " \
           f"{c.number}; сейчас на нём {balance}." in m["body"].replace("\r\n", "\n")


def test_staff_ordering_for_a_subscriber_is_a_purchase_too_and_a_refused_one_is_not(ctx, seller):
    """Staff order hosting on Boris's behalf (the same form twice): he is told once. An order
    refused for want of money tells nobody anything (the notice is in the order's transaction)."""
    t = imported_tariff(make_handler(seller), price="450.00")
    _, c, a = subscriber_with_account("boris", paid="1000.00")
    _, poor_c, poor = subscriber_with_account("vera", paid="100.00")
    for _ in range(2):
        console.order_for(a.login, t.id, domain=None, actor="staff:kassa", nonce="staff-form-1")
        db.session.commit()
    assert [n.data["service_name"] for n in _bought(c.id)] == ["VDS-1"]
    with pytest.raises(BillingError):
        orders.place_order(db.session.get(Account, poor.id), t, actor="staff:kassa")
    db.session.rollback()
    assert _bought(poor_c.id) == []
