"""Session lifetimes, security headers and the app-wide refusal of unsafe input.

Sessions. The staff login (Flask-Login) and the cabinet login live side by side in one
cookie session; each area registers how to tell it is open and how to end it
(``session_area``). Its login time and last request time are kept in the session, and a
request ends the area's session when it has been idle longer than ``SESSION_IDLE_TIMEOUT`` or
open longer than ``SESSION_MAX_LIFETIME`` (whatever the cookie says). Ending sessions
elsewhere (logout, a new password, an admin's "end sessions") is each area's own key check:
``StaffUser.get_id`` and the cabinet's password fingerprint.

Headers. Every answer says: scripts, styles, images, fonts and connections from our own
origin only (no inline script or style: the templates keep them in ``static/``), no framing
by anyone (``frame-ancestors 'none'`` and ``X-Frame-Options: DENY``), no type sniffing, and
no full URL in the Referer sent elsewhere. rq-dashboard's pages (a vendored admin tool with
inline scripts) get the same headers with inline script and style allowed.

Input. A NUL anywhere in a form or the query, or a control character in ``next``/``back``,
is refused before any view runs (``_refuse_unsafe_input``); the rest of the checks are each
field's own (``billing/inputs.py``).
"""
from __future__ import annotations

import time
from collections.abc import Callable

from flask import Flask, current_app, render_template, request, session
from flask.sessions import SecureCookieSessionInterface
from werkzeug.datastructures import MultiDict

from .api.upsale import PREFIX as UPSALE_PREFIX
from .billing.inputs import unsafe_redirect_target
from .web import is_htmx, translate_message, with_toast

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
       "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'")
CSP_INLINE = CSP.replace("script-src 'self'", "script-src 'self' 'unsafe-inline'").replace(
    "style-src 'self'", "style-src 'self' 'unsafe-inline'")
INLINE_BLUEPRINTS = ("rq_dashboard",)
HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
TIMES_KEY = "_session_times"  # {area: [login time, last request time]} (epoch seconds)
SEEN_RESOLUTION = 60  # the last request time is rewritten at most once a minute

_areas: dict[str, tuple[Callable[[], bool], Callable[[], None]]] = {}


def session_area(name: str, is_open: Callable[[], bool], end: Callable[[], None]) -> None:
    """Register a login area: ``is_open()`` says whether the session holds its login,
    ``end()`` drops it."""
    _areas[name] = (is_open, end)


def session_started(name: str) -> None:
    """Call right after a login: the area's lifetime starts now."""
    now = int(time.time())
    session[TIMES_KEY] = {**session.get(TIMES_KEY, {}), name: [now, now]}


def session_ended(name: str) -> None:
    times = dict(session.get(TIMES_KEY, {}))
    if times.pop(name, None) is not None:
        session[TIMES_KEY] = times


def _expire_sessions() -> None:
    """End an area's session that is idle too long, too old, or has no recorded login time."""
    if request.endpoint == "static" or not _areas:
        return
    config, now = current_app.config, int(time.time())
    times = session.get(TIMES_KEY)
    times = dict(times) if isinstance(times, dict) else {}
    changed = False
    for name, (is_open, end) in _areas.items():
        if not is_open():
            continue
        stamp = times.get(name)
        valid = isinstance(stamp, list) and len(stamp) == 2 and all(isinstance(t, int) for t in stamp)
        if (not valid or now - stamp[0] > config["SESSION_MAX_LIFETIME"]
                or now - stamp[1] > config["SESSION_IDLE_TIMEOUT"]):
            end()
            times.pop(name, None)
            changed = True
        elif now - stamp[1] >= SEEN_RESOLUTION:
            times[name] = [stamp[0], now]
            changed = True
    if changed:
        session[TIMES_KEY] = times


REDIRECT_PARAMS = ("next", "back")
_UPSALE = UPSALE_PREFIX + "/"


def _refuse_unsafe_input():
    """A NUL character in any form field or query parameter (PostgreSQL cannot store or even
    compare it), or a control character in ``next``/``back`` (CR/LF would split a Location
    header), is refused for the whole app before any view runs: 422 naming the field, JSON
    under /api, a short page elsewhere. Nothing is read further, nothing written."""
    if request.path.startswith(_UPSALE):
        return None  # a platform callback answers in its own protocol (api/upsale.py reads its input)
    bad = None
    for source in (request.args, request.form if request.mimetype in FORM_TYPES else MultiDict()):
        for name, value in source.items(multi=True):
            if "\x00" in value or "\x00" in name:
                bad = (name.replace("\x00", ""), "must not contain NUL characters")
            elif name in REDIRECT_PARAMS and unsafe_redirect_target(value):
                bad = (name, "must not contain control characters")
            if bad:
                break
        if bad:
            break
    if bad is None:
        return None
    from .api import PREFIX
    from .api.errors import json_error

    if request.path.startswith(PREFIX + "/"):
        return json_error(422, "invalid input", {bad[0]: bad[1]})
    message = translate_message(bad[1])
    if is_htmx():  # the form stays as typed (no swap); a toast says what is wrong
        return with_toast("", f"{bad[0]}: {message}", 422, **{"HX-Reswap": "none"})
    return render_template("errors/422.html", field=bad[0], message=message), 422


FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _add_headers(response):
    policy = CSP_INLINE if request.blueprint in INLINE_BLUEPRINTS else CSP
    response.headers.setdefault("Content-Security-Policy", policy)
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    return response


class CookieSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions with the signing serializer built once per key set
    instead of on every request (about a tenth of a bare request's CPU in our app: the
    callbacks and payments that carry no cookie paid it too)."""

    _cached: tuple | None = None

    def get_signing_serializer(self, app: Flask):
        keys = (app.secret_key, tuple(app.config["SECRET_KEY_FALLBACKS"] or ()))
        cached = self._cached
        if cached is None or cached[0] != keys:
            cached = self._cached = (keys, super().get_signing_serializer(app))
        return cached[1]


def register(app: Flask) -> None:
    """Install the session expiry check and the headers on every request of ``app``."""
    app.session_interface = CookieSessions()
    app.before_request(_refuse_unsafe_input)
    app.before_request(_expire_sessions)
    app.after_request(_add_headers)
