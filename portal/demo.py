"""Demo data for `make run`: staff, a subscriber with a cabinet login, tariffs, accounts."""
from __future__ import annotations

import click
from flask.cli import AppGroup

demo = AppGroup("demo", help="Demo data.")


@demo.command("load")
@click.option("--if-empty", is_flag=True, help="Do nothing when staff users exist already.")
def demo_load(if_empty: bool) -> None:
    """Load the demo data set."""
    click.echo("demo data: not yet")
