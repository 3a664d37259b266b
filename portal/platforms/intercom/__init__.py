"""«Интерсвязь» intercom platform: an account with the intercom service and an
``isvyaz_login`` is an address (flat) on the platform profile of that login, with full or
limited access as billing says (sync.py); the wire protocol is the draft contract of
../shared/protocols/intercom.md section 5.4 (client.py), the emulator implements it
(emulator.py). Staff pages: portal/admin/intercom.py; cabinet: portal/cabinet/intercom.py;
jobs: jobs/intercom.py."""
from sqlalchemy import event

from ...models import PlatformConnection
from ..registry import DemoEmulator, Platform, register
from . import client, store, sync

DEMO_TOKEN = "demo-intercom-key"


def demo_emulator() -> DemoEmulator:
    from .emulator import IntercomEmulator

    emulator = IntercomEmulator(token=DEMO_TOKEN).load_demo().start()
    emulator.keep_requests = False
    return DemoEmulator(url=emulator.url, login=None, password=DEMO_TOKEN, options={}, stop=emulator.stop)


def demo_load() -> None:
    from .demo import load

    load()


register(Platform(name=sync.PLATFORM, title="«Интерсвязь»", desired_state=sync.desired_state,
                  client=client.IntercomClient, reconcile=sync.reconcile, reconcile_batch=sync.reconcile_batch,
                  demo_emulator=demo_emulator, demo_load=demo_load,
                  admin_endpoint="admin.intercom", check_endpoint="admin.intercom_check",
                  cabinet_template="cabinet/intercom/_section.html",
                  account_template="admin/intercom/_account_access.html"))


@event.listens_for(PlatformConnection, "after_insert")
@event.listens_for(PlatformConnection, "after_update")
def _login_field(_mapper, connection, target) -> None:
    """Saving the intercom connection (admin form, CLI, API, demo) creates the account field
    ``isvyaz_login`` in the same transaction, once: the operator never has to find the
    extra-field form before the first intercom account."""
    if target.kind == sync.PLATFORM:
        store.ensure_login_field(connection)
