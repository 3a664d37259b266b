"""Webhook jobs (portal.platforms.webhook.console does the work)."""
from __future__ import annotations

from portal.platforms.webhook import console

from . import in_app_context, report


@in_app_context
def check(actor: str) -> dict:
    answer = console.check(actor=actor)
    report(result="document accepted" if answer["accepted"] else f"refused: {answer['error']}")
    return answer
