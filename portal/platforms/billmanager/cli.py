"""`flask billmanager ...`: the reselling jobs by hand (the scheduler runs them by itself)."""
from __future__ import annotations

import click
from flask.cli import AppGroup

billmanager = AppGroup("billmanager", help="Reselling through a selling BILLmanager.")


@billmanager.command("renew")
@click.option("--date", "day", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="Renew for the month of this day (default: today in BILLING_TZ).")
def renew(day) -> None:
    """Renew on the seller every service whose month is charged and not renewed yet (the
    00:35 job; safe to run twice: the month is the key). A lost answer is never resent."""
    from .orders import renew_due

    result = renew_due(day.date() if day else None)
    click.echo(", ".join(f"{k} {v}" for k, v in result.items()))


@billmanager.command("retry-orders")
def retry_orders() -> None:
    """Hand the worker every waiting order that is due (runs every SWEEP_INTERVAL)."""
    from .orders import retry_due

    click.echo(f"enqueued {retry_due()}")
