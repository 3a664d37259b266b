"""Reselling through a selling BILLmanager 6: service handlers (several selling accounts,
one product type each), tariff import from ``pricelist.export``, orders paid here and
ordered there with ``remoteid``, suspend/resume/delete through the outbox, renewal after each
charge run, a 5-minute poller and a twice-daily balance check. Protocol notes:
/work/shared/protocols/billmanager.md; see client.py, orders.py, sync.py."""
from ..registry import DemoEmulator, Platform, register
from . import sync
from .settings import CONNECTION_OPTIONS

DEMO_PORT = 8098  # fixed, so that a handler made in one `make run` still works in the next


def _demo_emulator() -> DemoEmulator:
    from .emulator import DEMO_LOGIN, DEMO_PASSWORD, demo

    seller = demo()
    seller.port = DEMO_PORT
    try:
        seller.start()
    except OSError:  # the port is taken: any free one
        seller.port = 0
        seller.start()
    return DemoEmulator(url=seller.url, login=DEMO_LOGIN, password=DEMO_PASSWORD,
                        options=dict(CONNECTION_OPTIONS), stop=seller.stop)


def _demo_moved(old_url: str, new_url: str) -> None:
    from .demo import moved

    moved(old_url, new_url)


def _demo_load() -> None:
    from .demo import load

    load()


register(Platform(name="billmanager", title="BILLmanager", desired_state=sync.desired_state, client=sync.Fleet,
                  reconcile=sync.reconcile, demo_emulator=_demo_emulator, demo_load=_demo_load,
                  demo_moved=_demo_moved, admin_endpoint="admin.bm_handlers",
                  cabinet_template="cabinet/billmanager/_section.html"))
