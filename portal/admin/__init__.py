"""Staff interface (the admin blueprint): one module per area, all on one blueprint.

Every module of this package is imported here, so an area (a platform's console, say) adds
its pages by adding a module."""
import importlib
import pkgutil

from flask import Blueprint

bp = Blueprint("admin", __name__)

for _info in pkgutil.iter_modules(__path__):
    if _info.name not in ("auth",):
        importlib.import_module(f"{__name__}.{_info.name}")
