"""Billing's question before a change on an account on Stalker (the registry's
``check_change`` hook): can Stalker carry this tariff or this service? Answered from what
billing knows of Stalker (catalog.py), never by calling it."""
from __future__ import annotations

from flask import has_request_context
from flask_babel import gettext

from ...billing import outbox
from . import catalog

PLATFORM = "stalker"


def check_change(account, tariff=None, service=None) -> dict:
    """Field errors for a tariff whose plan Stalker does not have, or a service whose package
    the account's plan does not offer as optional; ``{}`` for an account not on Stalker."""
    errors = {}
    # whether the account is on Stalker matters only for a tariff: a service that is no Stalker
    # package is never refused (package_refusal), so its check asks the database nothing
    if tariff is not None and account.id is not None and outbox.on_platform(account.id, PLATFORM):
        plan = catalog.plan_of(tariff.id)
        if plan is None or catalog.plan_exists(plan) is False:
            errors["tariff_id"] = _no_plan(tariff.name)
    if service is not None and catalog.package_of(service) is not None:
        refusal = catalog.package_refusal(account.tariff_id, service)
        if refusal:
            errors["service_id"] = refusal
    return errors


def _no_plan(name: str) -> str:
    """The refusal, in the reader's language when there is a reader (a job has no locale)."""
    if has_request_context():
        return gettext("Stalker has no plan for tariff «%(name)s»: import the plan in Stalker's console or "
                       "choose another tariff", name=name)
    return (f"Stalker has no plan for tariff «{name}»: import the plan in Stalker's console or choose another "
            "tariff")
