"""Stalker console jobs (portal.platforms.stalker.console does the work)."""
from __future__ import annotations

from portal.platforms.stalker import console

from . import in_app_context, report


@in_app_context
def refresh(kinds=None, actor: str = "system") -> dict:
    out = console.refresh(tuple(kinds or console.KINDS), actor=actor, progress=lambda text: report(progress=text))
    errors = [f"{k}: {v[7:]}" for k, v in out.items() if isinstance(v, str) and v.startswith("error: ")]
    counts = ", ".join(f"{k} {v}" for k, v in out.items() if isinstance(v, int))
    report(result="; ".join(filter(None, [counts, *errors]))[:200])
    return out


@in_app_context
def delete_account(row_id: int, actor: str) -> str:
    return console.delete_account(row_id, actor=actor)


@in_app_context
def import_channels(actor: str) -> int:
    return console.import_channels(actor=actor)


@in_app_context
def check(actor: str) -> dict:
    return console.check(actor=actor)


@in_app_context
def raw(method: str, resource: str, params: str, actor: str) -> str:
    return console.raw(method, resource, params, actor=actor)
