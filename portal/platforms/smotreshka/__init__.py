"""«Смотрёшка» (Lifestream) IPTV: the operator API v2 + account-state v3 (client.py, sync.py),
upsale v3 ensure/commit (upsale.py; its HTTP endpoints are in portal/api/upsale.py), catalog
import, check, drift report and re-sync (console.py), TV subscriptions in billing (tv.py), the
emulator with its subscriber app (emulator.py), and demo data in the three ways of selling TV
(demo.py)."""
from ..registry import DemoEmulator, Platform, register
from . import client, sync


def _demo_emulator() -> DemoEmulator:
    from flask import current_app

    from .emulator import SmotreshkaEmulator

    emu = SmotreshkaEmulator().start()
    emu.app.configure(f"http://127.0.0.1:{current_app.config['PORT'] or 5000}", "lifestream", "upsale-demo-pass")
    return DemoEmulator(url=emu.url, login="lifestream", password="upsale-demo-pass",
                        options={"login_prefix": "demo_", "upsale_allowed_ips": "127.0.0.1/32, ::1/128",
                                 "self_service": "on", "account_state": "on"},
                        stop=emu.stop)


def _demo_load() -> None:
    from .demo import load

    load()


register(Platform(
    name=sync.NAME, title="«Смотрёшка»", desired_state=sync.desired_state, client=client.SmotreshkaClient,
    reconcile=sync.reconcile, skip_unchanged=True, apply_platform_changes=sync.apply_platform_changes,
    demo_emulator=_demo_emulator, demo_load=_demo_load,
    admin_endpoint="admin.smotreshka", check_endpoint="admin.smotreshka_check",
    cabinet_template="cabinet/smotreshka/_section.html",
    account_template="admin/smotreshka/_account_tv.html",
))
