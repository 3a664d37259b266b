"""The built-in webhook platform: POSTs each account's desired state as JSON to a URL (an
operator's own system, or the emulator in tests). See client.py for the protocol."""
from ..registry import Platform, register
from . import client, sync

register(Platform(name="webhook", title="Webhook", desired_state=sync.desired_state,
                  client=client.WebhookClient, reconcile=sync.reconcile))
