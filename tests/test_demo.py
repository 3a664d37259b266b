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
        assert all(counts)
        assert db.session.scalar(select(StaffUser).filter_by(login="admin")).check_password("admin12345")
        demo = db.session.scalar(select(Subscriber).filter_by(cabinet_login="demo"))
        assert demo.check_cabinet_password("demo12345")
    again = runner.invoke(args=["demo", "load", "--if-empty"])
    assert again.exit_code == 0, again.output
    with app.app_context():
        assert [db.session.scalar(select(func.count()).select_from(m))
                for m in (StaffUser, Subscriber, Account)] == counts


def test_make_run_moves_the_demo_seller_when_its_port_is_taken_and_handlers_follow(app):
    """Another program holds the demo BILLmanager's usual port: `make run` starts the emulator on
    a free port, and a handler staff made against the demo seller follows it there."""
    import socket
    from urllib.parse import urlsplit

    from portal.devserver import start_emulators
    from portal.extensions import db
    from portal.models import BmHandler, PlatformConnection
    from tests.billmanager_fixtures import make_handler

    class Seller:  # make_handler needs only its URL
        url = ""

    first = start_emulators(app)
    try:
        with app.app_context():
            Seller.url = db.session.scalar(db.select(PlatformConnection.url).filter_by(kind="billmanager"))
            hid = make_handler(Seller).id
    finally:
        for emu in first:
            emu.stop()
    old = Seller.url
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("127.0.0.1", urlsplit(old).port))
    holder.listen()
    try:
        second = start_emulators(app)
        for emu in second:
            emu.stop()
    finally:
        holder.close()
    with app.app_context():
        new = db.session.scalar(db.select(PlatformConnection.url).filter_by(kind="billmanager"))
        assert new != old and db.session.get(BmHandler, hid).url == new
