"""The built-in webhook platform: POSTs each account's desired state as JSON to a URL (an
operator's own system, or the emulator in tests and ``make run``). The smallest platform, with
the whole shape (see the recipe in portal/platforms/__init__.py): client.py (the protocol),
sync.py, emulator.py, console.py (the connection check), demo.py, settings.py."""
from ..registry import DemoEmulator, Platform, register
from . import client, sync


def _demo_emulator() -> DemoEmulator:
    from .demo import emulator

    return emulator()


register(Platform(name="webhook", title="Webhook", desired_state=sync.desired_state,
                  client=client.WebhookClient, reconcile=sync.reconcile, demo_emulator=_demo_emulator,
                  check_endpoint="admin.webhook_check"))
