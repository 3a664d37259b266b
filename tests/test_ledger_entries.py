"""A readable money trail: every ledger entry says what it is, the same in the staff ledger and
in the cabinet (a block refund is not a disable refund, the monthly fee is not a new service)."""
from __future__ import annotations

import re
from datetime import date

from portal.billing import accounts as acc
from portal.billing import charging, clock
from portal.extensions import db
from portal.models import AssignedService, LedgerEntry
from tests.builders import gen_service, gen_staff, subscriber_with_account
from tests.helpers import cabinet_login
from tests.helpers import login as staff_login

DAY = date(2026, 11, 17)  # mid-month: every change moves money


def _titles(html: str) -> list[str]:
    return [re.sub(r"\s+", " ", t).strip() for t in re.findall(r'class="l-title">([^<]+)<', html)]


def test_each_entry_says_which_change_posted_it(app, client):
    """A subscriber's month: activation, a new service, a manager's block and its lifting, the
    service ended, the account disabled. Staff and the subscriber read what each entry was for."""
    with app.app_context():  # (not around the requests: each has its own, with its language)
        cid = _a_month_of_changes()
    gen_staff_in(app, "boss")
    staff_login(client, "boss")
    page = client.get(f"/contracts/{cid}?lang=en").get_data(as_text=True)
    titles = _titles(page)
    for title in ("Payment", "Charge on activation", "Charge for a new service", "Refund for a block",
                  "Charge on unblocking", "Refund for an ended service", "Refund for disabling the account"):
        assert title in titles, (title, titles)
    assert "Кино, November 2026" in page  # the service and the month each is for
    ru = _titles(client.get(f"/contracts/{cid}?lang=ru").get_data(as_text=True))
    assert "Возврат за блокировку" in ru and "Возврат при отключении учётной записи" in ru

    client.get("/logout")
    cabinet_login(client, "olga", lang="en")
    cab = client.get(f"/cabinet/contracts/{cid}?lang=en").get_data(as_text=True)
    assert _titles(cab) == titles  # one description, staff and subscriber alike


def gen_staff_in(app, login: str) -> None:
    with app.app_context():
        gen_staff(login)


def _a_month_of_changes() -> int:
    kino = gen_service("300.00", name="Кино")
    with clock.as_of(DAY):
        s, c, a = subscriber_with_account("olga", services=[kino], monthly_fee="600.00", paid="5000.00")
        acc.block(a, "manager", actor="staff:boss")
        db.session.commit()
        acc.unblock(a, "manager", actor="staff:boss")
        db.session.commit()
        service = db.session.scalar(db.select(AssignedService).filter_by(account_id=a.id, service_id=kino.id))
        acc.end_service(service, actor="staff:boss")
        db.session.commit()
        acc.disable(a, actor="staff:boss")
        db.session.commit()
    with clock.as_of(date(2026, 12, 1)):
        charging.charge()  # the next month's fee of a disabled account: nothing; of others: the run
        db.session.commit()

    entries = db.session.scalars(db.select(LedgerEntry).where(LedgerEntry.contract_id == c.id)
                                 .order_by(LedgerEntry.id)).all()
    reasons = [(e.kind, e.reason) for e in entries]
    # the order the changes came in, each entry with the change that posted it
    assert ("charge", "account.activate") in reasons and ("charge", "service.assign") in reasons
    assert ("refund", "account.block") in reasons and ("charge", "account.unblock") in reasons
    assert ("refund", "service.end") in reasons and ("refund", "account.disable") in reasons
    return c.id


def test_the_monthly_run_reads_as_the_monthly_fee(app, client):
    """The charge run's entries read as the monthly fee, not as a change."""
    with app.app_context():
        with clock.as_of(date(2026, 11, 30)):
            s, c, a = subscriber_with_account("pavel", monthly_fee="600.00", paid="5000.00")
        with clock.as_of(date(2026, 12, 1)):
            charging.charge()
            db.session.commit()
        run = db.session.scalar(db.select(LedgerEntry).where(LedgerEntry.contract_id == c.id,
                                                             LedgerEntry.charge_run_id.is_not(None)))
        assert run is not None and run.reason is None
        cid = c.id
        gen_staff("boss2")
    staff_login(client, "boss2")
    titles = _titles(client.get(f"/contracts/{cid}?lang=en").get_data(as_text=True))
    assert titles[0] == "Monthly fee"
