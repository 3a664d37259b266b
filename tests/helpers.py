"""Helpers shared by test modules (not fixtures: those are in conftest.py and *_fixtures.py):
logging staff and subscribers in, posting forms with the CSRF token, reading a field's error."""
from __future__ import annotations

import re

import flask_babel

HX = {"HX-Request": "true"}
CABINET_PASSWORD = "cabinet-pass-1"  # the password builders give subscribers with a cabinet login


def login(client, login_name: str, password: str = "password123"):
    """Log a staff member in through the login form (with its CSRF token)."""
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    return client.post("/login", data={"login": login_name, "password": password, "csrf_token": token})


def english(client):
    """Pages in English from here on. (``?lang=en`` alone does not do it here: the requests
    share the test's app context, where Flask-Babel keeps the locale it chose first.)"""
    with client.session_transaction() as session:
        session["lang"] = "en"
    flask_babel.refresh()


def login_in_english(client, *args, **kw):
    """Staff log in; pages in English from here on (the Russian catalog would hide the msgids)."""
    login(client, *args, **kw)
    english(client)


def staff_in_english(client, role="admin"):
    """A staff member ``<role>1`` with that role, logged in, pages in English."""
    from tests.builders import gen_staff

    gen_staff(f"{role}1", role=role)
    login(client, f"{role}1")
    english(client)


def page_token(client) -> str:
    """The session's CSRF token, as every page carries it for HTMX (hx-headers on <body>)."""
    return re.search(r'"X-CSRFToken": "([^"]+)"', client.get("/").get_data(as_text=True)).group(1)


def post(client, path, data, **kw):
    """A staff form posted with the session's CSRF token."""
    return client.post(path, data={"csrf_token": page_token(client), **data}, **kw)


def field_error(html: str, name: str) -> str | None:
    """The error shown next to a form field, or None."""
    m = re.search(rf'<span class="error" data-field="{re.escape(name)}">([^<]+)</span>', html)
    return m.group(1) if m else None


def form_token(client, path="/cabinet/login") -> str:
    """The CSRF token of the form on the page at ``path``."""
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def cabinet_login(client, login: str, password: str = CABINET_PASSWORD, lang: str = "en", follow=False):
    """Log a subscriber into the cabinet through its login form."""
    csrf = form_token(client, f"/cabinet/login?lang={lang}")
    return client.post("/cabinet/login", data={"login": login, "password": password, "csrf_token": csrf},
                       follow_redirects=follow)
