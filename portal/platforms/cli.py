"""`flask platforms ...`: connections (passwords only from stdin, never printed) and sync."""
from __future__ import annotations

import sys

import click
from flask.cli import AppGroup

from ..billing.errors import BillingError
from ..extensions import db
from . import connections, outbox, reconcile

platforms = AppGroup("platforms", help="Platform connections and synchronisation.")


def _options(pairs: tuple[str, ...]) -> dict | None:
    if not pairs:
        return None
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r}: expected KEY=VALUE", param_hint="--option")
        out[key] = value
    return out


@platforms.command("set")
@click.argument("kind")
@click.option("--url", required=True, help="Where the platform's API is.")
@click.option("--login", default=None, help="Login for the platform (HTTP Basic for the webhook); '' clears it.")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE",
              help="A platform option (repeatable); given options replace the stored ones.")
@click.option("--enable/--disable", "enabled", default=None, help="Switch the connection on or off.")
def set_connection(kind, url, login, password_stdin, options, enabled):
    """Create or change the connection of platform KIND. What is not given is kept (the
    password unless --password-stdin, the login, the options)."""
    password = sys.stdin.readline().rstrip("\r\n") if password_stdin else None
    try:
        row = connections.save_connection(kind, url=url, login=login, password=password,
                                          options=_options(options), enabled=enabled, actor="cli")
    except BillingError as e:
        raise click.ClickException(str(e)) from None
    db.session.commit()
    click.echo(f"{kind}: saved ({_describe(connections.public(row))})")


def _describe(c: dict) -> str:
    options = ", ".join(f"{k}={v}" for k, v in sorted(c["options"].items())) or "-"
    return (f"url {c['url']}, login {c['login'] or '-'}, password {'set' if c['password_set'] else 'not set'}, "
            f"options {options}, {'enabled' if c['enabled'] else 'disabled'}")


@platforms.command("list")
def list_connections():
    """Show the connections (whether a password is set, never the password)."""
    rows = connections.list_connections()
    if not rows:
        click.echo("no platform connections (flask platforms set KIND --url URL ...)")
    for c in rows:
        click.echo(f"{c['kind']}: {_describe(c)}")


@platforms.command("sync")
@click.option("--account", "account_id", type=int, help="One account on all its platforms.")
@click.option("--all", "everything", is_flag=True, help="Every account on every platform (the nightly run).")
def sync(account_id, everything):
    """Queue a reconcile: one account ("sync now") or all of them."""
    if account_id is not None:
        reconcile.request_sync(account_id, actor="cli")
        db.session.commit()
        click.echo(f"account {account_id}: sync queued")
    elif everything:
        click.echo(f"{reconcile.reconcile_all()} job(s) queued")
    else:
        raise click.UsageError("give --account ID or --all")


@platforms.command("retry")
@click.option("--account", "account_id", type=int)
@click.option("--platform", default=None)
def retry(account_id, platform):
    """Retry dead sync states (all, or of one account / platform)."""
    n = reconcile.retry_dead(account_id, platform, actor="cli")
    db.session.commit()
    click.echo(f"{n} dead sync state(s) queued again")


@platforms.command("sweep")
def sweep():
    """Enqueue what the outbox still holds and the due retries (what the scheduler does)."""
    click.echo(outbox.sweep())
