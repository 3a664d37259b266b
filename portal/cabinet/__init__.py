"""Subscriber self-service (the cabinet blueprint): balance and ledger, accounts with their
services and prices, the subscriber's own block, the cabinet password."""
from flask import Blueprint

bp = Blueprint("cabinet", __name__, url_prefix="/cabinet")

from . import views  # noqa: E402,F401  (register the routes)
