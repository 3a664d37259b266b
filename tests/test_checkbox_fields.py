"""Checkboxes and yes/no fields in the staff forms (portal/admin/pages.form_bool): the usual
words for yes and no are read as such, an unticked box is "no", and anything else is refused
beside the field with nothing saved, never taken silently for "no"."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from portal.billing import forecast
from portal.extensions import db
from portal.models import AuditEntry, Contract
from tests.builders import gen_contract, gen_subscriber
from tests.helpers import field_error, post, staff_in_english


def audit_count() -> int:
    return len(db.session.scalars(select(AuditEntry.id)).all())


@pytest.mark.parametrize(("value", "expected"), [("1", True), ("on", True), ("yes", True), ("Y", True),
                                                 ("true", True), ("0", False), ("off", False), ("no", False),
                                                 ("false", False), ("", False), (None, False)])
def test_the_usual_words_for_yes_and_no_and_an_unticked_box(client, ctx, value, expected):
    """Does "Do not block" on the contract page read yes/no/1/0/on/off/... as staff meant it,
    and an unticked box (nothing posted) as no?"""
    staff_in_english(client)
    contract = gen_contract(gen_subscriber(), do_not_block=not expected)
    data = {"credit_limit": "0"} | ({} if value is None else {"do_not_block": value})
    r = post(client, f"/contracts/{contract.id}/settings", data)
    assert r.status_code == 303, r.get_data(as_text=True)[:500]
    db.session.expire_all()
    assert db.session.get(Contract, contract.id).do_not_block is expected


@pytest.mark.parametrize("value", ["maybe", "2", "da", "-1"])
def test_a_hostile_value_is_an_error_beside_the_field_and_nothing_is_saved(client, ctx, value):
    """A value that is neither yes nor no, in each form with a checkbox: the page comes back
    (422) with the error beside that checkbox, and nothing is saved."""
    staff_in_english(client)
    subscriber = gen_subscriber()
    contract = gen_contract(subscriber, do_not_block=True)
    before_enabled = forecast.settings().enabled
    before = audit_count()
    forms = [
        (f"/subscribers/{subscriber.id}/contracts", {"credit_limit": "0", "do_not_block": value}, "do_not_block"),
        (f"/contracts/{contract.id}/settings", {"credit_limit": "0", "do_not_block": value}, "do_not_block"),
        ("/low-balance", {"enabled": value, "thresholds": "7, 3, 1"}, "enabled"),
        ("/blocking-rules/freeze", {"enabled": value, "min_days": "7", "max_days": "90", "per_year": "2",
                                    "cooldown_days": "30", "fee": "0"}, "enabled"),
        ("/promised-payments", {"enabled": value, "amount_mode": "unblock", "max_amount": "500", "days": "3",
                                "per_month": "1", "fee": "0"}, "enabled"),
    ]
    for path, data, name in forms:
        r = post(client, path, data)
        assert r.status_code == 422, (path, r.status_code)
        assert field_error(r.get_data(as_text=True), name) == "true or false", path
    db.session.expire_all()
    assert audit_count() == before
    assert db.session.scalars(select(Contract.id)).all() == [contract.id]
    assert db.session.get(Contract, contract.id).do_not_block is True
    assert forecast.settings().enabled is before_enabled
