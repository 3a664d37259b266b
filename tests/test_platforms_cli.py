"""`flask platforms set/list`: the password goes in encrypted and never comes back out."""
from __future__ import annotations

import json

from sqlalchemy import select

from portal.billing.crypto import decrypt
from portal.extensions import db
from portal.models import AuditEntry, PlatformConnection

SECRET = "S3cret-Pa55"


def test_a_platform_password_is_stored_encrypted_and_never_printed(app, ctx):
    """When I set a platform's password with `flask platforms set`, is it stored encrypted,
    kept when I change the URL, and never printed or audited?"""
    runner = app.test_cli_runner()
    r = runner.invoke(args=["platforms", "set", "webhook", "--url", "https://hooks.example.net/portal",
                            "--login", "billing", "--password-stdin", "--option", "format=v1"], input=SECRET + "\n")
    assert r.exit_code == 0, r.output
    row = db.session.scalar(select(PlatformConnection))
    assert SECRET not in row.password_enc and decrypt(row.password_enc) == SECRET
    assert (row.kind, row.login, row.options) == ("webhook", "billing", {"format": "v1"})

    r = runner.invoke(args=["platforms", "set", "webhook", "--url", "https://hooks2.example.net/portal"])
    assert r.exit_code == 0, r.output
    db.session.expire_all()
    row = db.session.scalar(select(PlatformConnection))
    assert row.url == "https://hooks2.example.net/portal" and decrypt(row.password_enc) == SECRET

    listed = runner.invoke(args=["platforms", "list"]).output
    assert "webhook" in listed and "https://hooks2.example.net/portal" in listed and "login billing" in listed
    assert "password set" in listed and "format=v1" in listed
    audit = json.dumps([[e.summary, e.before, e.after] for e in db.session.scalars(select(AuditEntry))])
    for shown in (r.output, listed, audit):
        assert SECRET not in shown and row.password_enc not in shown


def test_platforms_set_refuses_credentials_in_the_url_and_unknown_platforms(app, ctx):
    """Does `flask platforms set` refuse a URL with a password in it, and a platform it does not know?"""
    runner = app.test_cli_runner()
    r = runner.invoke(args=["platforms", "set", "webhook", "--url", f"https://billing:{SECRET}@hooks.example.net/"])
    assert r.exit_code != 0 and "no credentials in the URL" in r.output and SECRET not in r.output
    r = runner.invoke(args=["platforms", "set", "nosuch", "--url", "https://x.example.net/"])
    assert r.exit_code != 0 and "webhook" in r.output
    assert db.session.scalar(select(PlatformConnection)) is None
