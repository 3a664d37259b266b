"""The demo data set that `make run` loads on a fresh machine."""
from __future__ import annotations

from sqlalchemy import func, select

from portal.extensions import db
from portal.models import Account, StaffUser, Subscriber


def test_demo_data_loads_on_an_empty_database_and_a_second_load_adds_nothing(app):
    """Does `flask demo load --if-empty` fill a new database (every platform's demo too), and
    leave it alone the second time?"""
    runner = app.test_cli_runner()
    first = runner.invoke(args=["demo", "load", "--if-empty"])
    assert first.exit_code == 0, first.output
    with app.app_context():
        counts = [db.session.scalar(select(func.count()).select_from(m)) for m in (StaffUser, Subscriber, Account)]
        assert all(counts) and db.session.scalar(select(StaffUser).filter_by(login="admin")).check_password("admin12345")
        demo = db.session.scalar(select(Subscriber).filter_by(cabinet_login="demo"))
        assert demo.check_cabinet_password("demo12345")
    again = runner.invoke(args=["demo", "load", "--if-empty"])
    assert again.exit_code == 0, again.output
    with app.app_context():
        assert [db.session.scalar(select(func.count()).select_from(m))
                for m in (StaffUser, Subscriber, Account)] == counts
