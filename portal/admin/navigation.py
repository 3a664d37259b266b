"""A staff form posted through HTMX that ends in a redirect lands on the new page with its URL.

The forms (macros.form_attrs) post with HTMX and swap in the page the answer renders. The
browser's XHR follows a redirect by itself, so the new page showed under the old URL: a reload
or a relative link went wrong. Such a redirect becomes HX-Location here: HTMX fetches the page
into the same place and puts its URL in the address bar and the history."""
from __future__ import annotations

import json

from flask import request

from ..web import is_htmx
from . import bp

FORM_HEADER = "X-Portal-Form"  # set by macros.form_attrs: the post came from a page form


@bp.after_request
def _redirect_as_location(response):
    if is_htmx() and request.headers.get(FORM_HEADER) == "page" and response.status_code in (301, 302, 303, 307):
        target = response.headers.get("Location")
        response.status_code = 200
        response.headers.pop("Location", None)
        response.set_data(b"")
        response.headers["HX-Location"] = json.dumps(
            {"path": target, "target": "main.page", "select": "main.page", "swap": "outerHTML"})
    return response
