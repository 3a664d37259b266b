"""«Интерсвязь» intercom platform: an account with the intercom service and an
``isvyaz_login`` is an address (flat) on the platform profile of that login, with full or
limited access as billing says (sync.py); the wire protocol is the draft contract of
../shared/protocols/intercom.md section 5.4 (client.py), the emulator implements it
(emulator.py). Staff pages: portal/admin/intercom.py; cabinet: portal/cabinet/intercom.py;
jobs: jobs/intercom.py."""
from ..registry import DemoEmulator, Platform, register
from . import client, sync

DEMO_TOKEN = "demo-intercom-key"


def demo_emulator() -> DemoEmulator:
    from .emulator import IntercomEmulator

    emulator = IntercomEmulator(token=DEMO_TOKEN).load_demo().start()
    emulator.keep_requests = False
    return DemoEmulator(url=emulator.url, login=None, password=DEMO_TOKEN, options={}, stop=emulator.stop)


def demo_load() -> None:
    from .demo import load

    load()


def periodic(config) -> list[dict]:
    """The nightly drift check of every known profile (after the full reconcile at 03:30)."""
    from jobs import intercom as jobs

    return [{"name": "intercom-check-profiles", "func": jobs.check_profiles, "queue_name": "low",
             "cron": "15 4 * * *"}]


register(Platform(name=sync.PLATFORM, title="«Интерсвязь»", desired_state=sync.desired_state,
                  client=client.IntercomClient, reconcile=sync.reconcile, reconcile_batch=sync.reconcile_batch,
                  demo_emulator=demo_emulator, demo_load=demo_load, periodic=periodic,
                  admin_endpoint="admin.intercom", check_endpoint="admin.intercom_check",
                  cabinet_template="cabinet/intercom/_section.html",
                  account_template="admin/intercom/_account_access.html"))
