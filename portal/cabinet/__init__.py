"""Subscriber self-service (the cabinet blueprint): balance and ledger, accounts with their
services and prices, the subscriber's own block, the cabinet password.

Every module of this package is imported here, so a platform's self-service (TV
subscriptions, hosting orders) adds its pages by adding a module (using ``views.current_subscriber``
and the login check there)."""
import importlib
import pkgutil

from flask import Blueprint

bp = Blueprint("cabinet", __name__, url_prefix="/cabinet")

from . import views  # noqa: E402,F401  (the base pages first: others use their helpers)

for _info in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_info.name}")
