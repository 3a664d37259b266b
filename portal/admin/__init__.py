"""Staff interface (the admin blueprint): one module per area, all on one blueprint."""
from flask import Blueprint

bp = Blueprint("admin", __name__)

from . import jobs, lists, pages, reference, views  # noqa: E402,F401  (register their routes)
