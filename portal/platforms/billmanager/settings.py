"""BILLmanager settings, typed: the timeouts from the portal's configuration (``config.load``
reads the environment; nothing here does). The credentials are each service handler's
(BmHandler: URL, selling account, password), not the connection's: the connection row only
switches suspend/resume/delete through the outbox on and off, its one option saying so
(``credentials=per handler``)."""
from __future__ import annotations

from dataclasses import dataclass

CONNECTION_OPTIONS = {"credentials": "per handler"}


@dataclass(frozen=True)
class Settings:
    timeout: float         # BILLMANAGER_TIMEOUT: seconds for a call that moves no money
    order_timeout: float   # BILLMANAGER_ORDER_TIMEOUT: for an order or a renewal (made once)
    order_lookup: float    # BILLMANAGER_ORDER_LOOKUP: how long to look for an order whose answer was lost


def load(config) -> Settings:
    """From the app's config (``current_app.config``)."""
    return Settings(timeout=float(config["BILLMANAGER_TIMEOUT"]),
                    order_timeout=float(config["BILLMANAGER_ORDER_TIMEOUT"]),
                    order_lookup=float(config["BILLMANAGER_ORDER_LOOKUP"]))
