"""Demo for ``make run``: a webhook receiver in this process (the platform's ``demo_emulator``
hook), so that an account whose agent names the webhook platform syncs at once. No billing
demo data: any agent or service can name the platform."""
from __future__ import annotations

from ..registry import DemoEmulator

DEMO_LOGIN, DEMO_PASSWORD = "portal", "webhook-demo-pass"


def emulator() -> DemoEmulator:
    from .emulator import WebhookReceiver

    receiver = WebhookReceiver(login=DEMO_LOGIN, password=DEMO_PASSWORD).start()
    return DemoEmulator(url=receiver.url, login=DEMO_LOGIN, password=DEMO_PASSWORD, stop=receiver.stop)
