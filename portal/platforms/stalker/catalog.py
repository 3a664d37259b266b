"""Which Stalker plan and packages billing's tariffs and services stand for.

The one place that maps billing -> Stalker identifiers: the sync, billing's checks and the
console ask here. (Interface agreed for issue 13; the stored mapping replaces today's rule
"tariff id = plan external_id, service external_id = package external_id".)"""
from __future__ import annotations


def plan_of(tariff_id: int | None) -> str | None:
    """The external_id of the Stalker plan a billing tariff stands for (None: none)."""
    return None if tariff_id is None else str(tariff_id)


def package_of(service) -> str | None:
    """The external_id of the Stalker package a catalog service stands for (None: none)."""
    return service.external_id if service.platform == "stalker" and service.external_id else None


def optional_packages(plan_external_id: str | None) -> set[str] | None:
    """External ids of the packages a subscriber on this plan may switch on and off (None:
    not known, e.g. the plan was never imported)."""
    return None
