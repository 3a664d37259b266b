"""`flask ...` commands: staff users, API tokens, billing runs, demo data, platforms."""
from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

from .billing.errors import BillingError
from .billing.staff import issue_token
from .extensions import db
from .models import ROLES

staff = AppGroup("staff", help="Staff users of the admin interface.")
billing = AppGroup("billing", help="Charge runs and other billing jobs.")


@staff.command("create")
@click.option("--login", required=True)
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--full-name", default="")
@click.password_option(prompt="Password")
def staff_create(login: str, role: str, full_name: str, password: str) -> None:
    """Create a staff user (prompts for the password twice)."""
    from .billing.staff import create_staff

    try:
        create_staff({"login": login, "role": role, "full_name": full_name, "password": password}, actor="cli")
    except BillingError as e:
        raise click.ClickException(str(e)) from None
    db.session.commit()
    click.echo(f"staff user {login} ({role}) created")


@click.command("api-token")
@click.argument("action", type=click.Choice(["create"]))
@click.option("--name", required=True)
@click.option("--role", type=click.Choice(ROLES), required=True)
def api_token(action: str, name: str, role: str) -> None:
    """`flask api-token create --name N --role R`: prints the token once."""
    try:
        _token, plain = issue_token({"name": name, "role": role}, actor="cli")
    except BillingError as e:
        raise click.ClickException(str(e)) from None
    db.session.commit()
    click.echo(plain)


@billing.command("charge")
@click.option("--date", "run_date", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="The day to charge (default: today in BILLING_TZ).")
def billing_charge(run_date) -> None:
    """Charge every due service for the day (safe to run twice or in parallel)."""
    from .billing.charging import charge

    run = charge(run_date.date() if run_date else None, actor="cli")
    db.session.commit()
    click.echo(f"charge run #{run.id} for {run.run_date}: {run.entries} entries, charged {run.charged}, "
               f"refunded {run.refunded}, blocked {run.blocked} account(s)")


def register(app: Flask) -> None:
    app.cli.add_command(staff)
    app.cli.add_command(billing)
    app.cli.add_command(api_token)
    from .demo import demo
    from .platforms.billmanager.cli import billmanager
    from .platforms.cli import platforms

    app.cli.add_command(demo)
    app.cli.add_command(platforms)
    app.cli.add_command(billmanager)


