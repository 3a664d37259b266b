"""A bulk message on its way (issue 19): the notices staff sent go out through delivery by SMS,
each written for its subscriber, and a subscriber who opted out of non-critical messages gets
none (the SMS gateway's emulator over HTTP)."""
from __future__ import annotations

from decimal import Decimal

import pytest
from babel.numbers import format_currency
from sqlalchemy import select

from portal.billing import directory, ledger
from portal.extensions import db
from portal.models import NotificationDelivery
from portal.notifications import bulk, delivery, preferences
from tests.builders import gen_contract, gen_subscriber

pytestmark = pytest.mark.integration


def _debtors(with_preferences: bool):
    people = {}
    for name, phone, amount in (("Иван", "+79001110001", "-100.00"), ("John", "+79001110002", "-250.50"),
                                ("Пётр", "+79001110003", "-30.00"), ("Анна", "+79001110004", "40.00")):
        s = gen_subscriber(full_name=name, phones=[phone])
        c = gen_contract(s)
        ledger.post(c.id, "correction", Decimal(amount), actor="t", comment="x")
        db.session.commit()
        people[name] = s
    if with_preferences:
        preferences.save(people["John"].id, {"sms": "1"}, actor="test")
    directory.set_language(people["John"].id, "en")  # the card or the cabinet's switch
    preferences.save(people["Пётр"].id, {"sms": "1", "only_critical": "1", "locale": "ru"}, actor="test")
    db.session.commit()


def _send_and_deliver(sms_gateway) -> dict:  # noqa: F811
    message, created = bulk.send(bulk.parse_filters({"balance_below": "0"}), "Долг",
                                 "{{ subscriber_name }}: {{ balance|money }}", actor="staff:boss",
                                 request_key="e2e-1")
    db.session.commit()
    assert created and message.recipients == 3
    delivery.prepare()
    for d in db.session.scalars(select(NotificationDelivery).order_by(NotificationDelivery.id)).all():
        assert delivery.deliver(d.id) == "sent"
    return {m["to"]: m["text"] for m in sms_gateway.messages}


EXPECTED = {"79001110001": f"Иван: {format_currency(Decimal('-100.00'), 'RUB', locale='ru')}",
            "79001110002": f"John: {format_currency(Decimal('-250.50'), 'RUB', locale='en')}"}


def test_a_bulk_message_reaches_each_debtor_in_their_words_except_one_who_opted_out(sms_gateway):  # noqa: F811
    """Do the debtors get the text with their own name and balance, in their language, and does
    the one who wants only critical messages get nothing?"""
    _debtors(with_preferences=True)
    assert _send_and_deliver(sms_gateway) == EXPECTED


def test_the_cards_language_counts_for_a_subscriber_who_never_saved_preferences(sms_gateway):  # noqa: F811
    """Is a subscriber whose card says English written to in English before they ever open
    the cabinet's notification preferences?"""
    _debtors(with_preferences=False)
    assert _send_and_deliver(sms_gateway) == EXPECTED
