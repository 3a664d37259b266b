"""Which Stalker plan and packages billing's tariffs and services stand for.

The one place that maps billing <-> Stalker identifiers: the sync, billing's checks and the
console ask here. The mapping is stored (portal/models/stalker_catalog.py):

* a tariff imported from a plan is bound to the plan's external_id (text, up to 64
  characters); a tariff that was never imported keeps the old rule "tariff id = external_id"
  (tariffs made by hand, as ABillS does), unless an imported plan holds that text;
* a package is the catalog service with ``platform='stalker'`` and the package's external_id;
* per imported plan, which of its packages are optional (the tariff offers their services)
  and which are mandatory (they come with the plan: not assignable, never sent).
"""
from __future__ import annotations

from flask import has_request_context
from flask_babel import gettext
from sqlalchemy import select

from ...extensions import db
from ...models import StalkerSnapshot, StalkerSnapshotRow, Tariff
from ...models.stalker_catalog import EXTERNAL_ID_MAX, StalkerImportedTariff, StalkerPlanPackage

PLATFORM = "stalker"


def _legacy_id(plan_external_id: str) -> int | None:
    """The tariff id the old rule gives a plan (its external_id as a number), if any."""
    text = str(plan_external_id or "")
    return int(text) if text.isdigit() and 0 < int(text) < 2 ** 31 else None


def _imported(plan_external_id: str) -> StalkerImportedTariff | None:
    return db.session.scalar(select(StalkerImportedTariff)
                             .where(StalkerImportedTariff.plan_external_id == str(plan_external_id)))


def plan_of(tariff_id: int | None) -> str | None:
    """The external_id of the Stalker plan a billing tariff stands for (None: none)."""
    if tariff_id is None:
        return None
    stored = db.session.scalar(select(StalkerImportedTariff.plan_external_id)
                               .where(StalkerImportedTariff.tariff_id == tariff_id))
    if stored is not None:
        return stored
    legacy = str(tariff_id)
    return None if _imported(legacy) is not None else legacy  # that text is another tariff's plan


def tariff_of(plan_external_id: str | None) -> int | None:
    """The billing tariff that stands for a Stalker plan (None: none in billing)."""
    if not plan_external_id:
        return None
    link = _imported(plan_external_id)
    if link is not None:
        return link.tariff_id
    legacy = _legacy_id(plan_external_id)
    if legacy is None or db.session.get(Tariff, legacy) is None or \
            db.session.get(StalkerImportedTariff, legacy) is not None:  # imported from another plan
        return None
    return legacy


def known_plans(plan_external_ids) -> set[str]:
    """Which of these plan external_ids have a billing tariff (one query for the stored ones)."""
    wanted = {str(p) for p in plan_external_ids if p not in (None, "")}
    if not wanted:
        return set()
    stored = set(db.session.scalars(select(StalkerImportedTariff.plan_external_id)
                                    .where(StalkerImportedTariff.plan_external_id.in_(wanted))))
    return stored | {p for p in wanted - stored if tariff_of(p) is not None}


def imported_plans() -> set[str]:
    """External ids of the plans imported into billing."""
    return set(db.session.scalars(select(StalkerImportedTariff.plan_external_id)))


def package_of(service) -> str | None:
    """The external_id of the Stalker package a catalog service stands for (None: none)."""
    return service.external_id if service.platform == PLATFORM and service.external_id else None


def _packages(plan_external_id: str | None) -> list[StalkerPlanPackage] | None:
    link = _imported(plan_external_id) if plan_external_id else None
    if link is None or not link.packages_known:
        return None
    return list(db.session.scalars(select(StalkerPlanPackage).where(StalkerPlanPackage.tariff_id == link.tariff_id)))


def optional_packages(plan_external_id: str | None) -> set[str] | None:
    """External ids of the packages a subscriber on this plan may switch on and off (None:
    not known, e.g. the plan was never imported, or was imported before packages were kept)."""
    packages = _packages(plan_external_id)
    return None if packages is None else {p.package_external_id for p in packages if p.optional}


def mandatory_packages(plan_external_id: str | None) -> set[str] | None:
    """External ids of the packages that come with this plan (None: not known)."""
    packages = _packages(plan_external_id)
    return None if packages is None else {p.package_external_id for p in packages if not p.optional}


def _say(message: str, **values) -> str:
    """A message in the user's language (in a web request; English elsewhere: the worker, the CLI)."""
    return gettext(message, **values) if has_request_context() else message % values


def package_refusal(tariff_id: int | None, service) -> str | None:
    """Why ``service`` cannot be assigned to an account on this tariff (in the user's language),
    or None when it can (or billing does not know the plan's packages). For billing's check
    before an assignment (checks.py)."""
    package = package_of(service)
    plan = plan_of(tariff_id)
    if package is None or plan is None:
        return None
    optional = optional_packages(plan)
    if optional is None or package in optional:
        return None
    if package in (mandatory_packages(plan) or set()):
        return _say("the Stalker package %(package)s comes with plan %(plan)s (mandatory there): it is not "
                       "assigned separately", package=package, plan=plan)
    return _say("the Stalker package %(package)s is not an optional package of plan %(plan)s",
                   package=package, plan=plan)


def valid_external_id(value) -> str | None:
    """A plan's or package's external_id as billing keeps it, or None when Stalker's value is
    unusable (empty, or longer than Stalker itself allows)."""
    text = str(value if value is not None else "")
    return text if text.strip() and len(text) <= EXTERNAL_ID_MAX else None


def plan_exists(plan_external_id: str | None) -> bool | None:
    """Does Stalker have this plan, as billing last saw it (no network call: billing asks from
    a web request)? The console's snapshot of ``tariffs`` when it was ever refreshed, else the
    imported plans; None: billing has not seen Stalker's plans. (Added by S1 for billing's
    tariff check, issue 13 item 3.)"""
    if not plan_external_id:
        return False
    snap = db.session.get(StalkerSnapshot, "tariffs")
    if snap is not None and snap.refreshed_at is not None:
        return db.session.scalar(select(StalkerSnapshotRow.id).where(
            StalkerSnapshotRow.kind == "tariffs", StalkerSnapshotRow.key == str(plan_external_id)[:100]).limit(1)) \
            is not None
    return True if _imported(plan_external_id) is not None else None
