"""Stalker plans and packages in billing (issue 13, items 4 and 5): plans bound by their
external_id as text, packages kept per plan as optional or mandatory; the emulator over real
HTTP, the sync in-process (reconcile_account) as the worker runs it."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from portal.billing import accounts as acc
from portal.billing.errors import BillingError
from portal.extensions import db
from portal.models import Account, AssignedService, CatalogService, Tariff
from portal.models.stalker_catalog import StalkerImportedTariff
from portal.platforms.reconcile import reconcile_account
from portal.platforms.stalker import catalog, console
from tests.builders import gen_account
from tests.helpers import HX, post
from tests.stalker_fixtures import row_id

PREMIUM = "premium-hd/2025 «Премиум»"  # any text up to 64 characters
FAMILY = "family"


@pytest.fixture
def plans(stalker):
    """Two plans sharing the HD package: optional in «Премиум HD», mandatory in «Семейный»."""
    base = next(p for p in stalker.packages.values() if p["external_id"] == "pkg_base")
    hd = stalker.add_package("hd-pack", "HD-каналы", "99.00")
    stalker.add_plan(PREMIUM, "Премиум HD", [(base, False), (hd, True)])
    stalker.add_plan(FAMILY, "Семейный", [(base, False), (hd, False)])
    console.refresh(("tariffs",), actor="test")
    return stalker


def imported(ext: str) -> Tariff:
    console.import_tariff(row_id("tariffs", ext), actor="test")
    db.session.commit()
    return db.session.get(Tariff, catalog.tariff_of(ext))


def test_a_plan_with_a_text_external_id_imports_and_syncs(staff, plans, tv_agent):
    """A plan whose external_id is not a number: does it import as a tariff (a fresh id), is the
    row marked imported, and does an account on that tariff reach Stalker on that plan?"""
    r = post(staff, f"/stalker/tariffs/{row_id('tariffs', PREMIUM)}/import", {}, headers=HX)
    assert r.status_code == 200 and "Премиум HD" in r.get_data(as_text=True)
    tariff = db.session.scalar(select(Tariff).filter_by(name="Премиум HD"))
    assert catalog.plan_of(tariff.id) == PREMIUM and catalog.tariff_of(PREMIUM) == tariff.id
    page = staff.get("/stalker/tariffs?q=premium").get_data(as_text=True)
    assert "re-sync" in page and "is taken by another tariff" not in page

    account = gen_account(agent=tv_agent, tariff=tariff, login="hd_fan")
    assert reconcile_account("stalker", account.id) == "ok"
    user = plans.find(login="hd_fan")
    assert plans.plans[user["plan_id"]]["external_id"] == PREMIUM
    # importing again re-syncs the same tariff: nothing doubled
    imported(PREMIUM)
    assert db.session.scalar(select(func.count()).select_from(StalkerImportedTariff)) == 1

    # a Stalker user on that plan: its row knows the tariff, and "+" puts the account on it
    plans.add_user("hd_viewer", "901", PREMIUM, 1, "00:1A:79:00:09:01", full_name="Зритель HD")
    console.refresh(("accounts",), actor="test")
    page = staff.get("/stalker/accounts?q=hd_viewer", headers=HX).get_data(as_text=True)
    assert "hd_viewer" in page and ">import tariff</a>" not in page
    r = post(staff, f"/stalker/accounts/{row_id('accounts', '901')}/add", {"start": "next_month"}, headers=HX)
    assert r.status_code == 200
    viewer = db.session.scalar(select(Account).filter_by(login="hd_viewer"))
    assert viewer.tariff_id == tariff.id and viewer.status == "active"
    assert reconcile_account("stalker", viewer.id) == "ok"
    assert plans.plans[plans.find(login="hd_viewer")["plan_id"]]["external_id"] == PREMIUM


def test_plans_imported_before_keep_their_numeric_ids(staff, stalker, tv_agent):
    """A numeric plan still becomes the tariff with that id, and a tariff made by hand under the
    old rule (id = external_id) still stands for its plan."""
    console.refresh(("tariffs",), actor="test")
    assert imported("9003").id == 9003 and catalog.plan_of(9003) == "9003"
    by_hand = db.session.get(Tariff, 9002) or Tariff(id=9002, name="ТВ 9002", kind="services", is_multi=False)
    db.session.add(by_hand)
    db.session.commit()
    assert catalog.plan_of(9002) == "9002" and catalog.tariff_of("9002") == 9002
    assert catalog.optional_packages("9002") is None  # never imported: billing does not know its packages
    assert catalog.optional_packages("9003") == {"pkg_sport", "pkg_kino"}


def test_a_package_optional_in_one_plan_and_mandatory_in_another(staff, plans, tv_agent):
    """HD is optional in «Премиум HD» and comes with «Семейный»: is it one billing service that
    only the first tariff offers, assignable there and refused (naming why) on the second, and
    does Stalker get it only where the plan lets the subscriber switch it?"""
    premium, family = imported(PREMIUM), imported(FAMILY)
    [hd] = db.session.scalars(select(CatalogService).filter_by(platform="stalker", external_id="hd-pack")).all()
    assert [s.external_id for s in premium.services] == ["hd-pack"] and family.services == []
    assert hd.iptv_kind is None  # no kind for all plans: the plan says
    assert catalog.optional_packages(PREMIUM) == {"hd-pack"}
    assert catalog.optional_packages(FAMILY) == set()
    assert catalog.mandatory_packages(FAMILY) == {"pkg_base", "hd-pack"}
    # the last import does not decide for the other plan
    imported(PREMIUM)
    assert catalog.optional_packages(FAMILY) == set() and catalog.optional_packages(PREMIUM) == {"hd-pack"}

    on_family = gen_account(agent=tv_agent, tariff=family, login="family_tv")
    with pytest.raises(BillingError) as refused:
        acc.assign_service(on_family, {"service_id": hd.id}, actor="test")
    db.session.rollback()
    assert refused.value.fields == {"service_id": "the Stalker package hd-pack comes with plan family (mandatory "
                                                  "there): it is not assigned separately"}
    assert db.session.scalar(select(func.count()).select_from(AssignedService)
                             .filter_by(account_id=on_family.id, service_id=hd.id)) == 0
    # the account page offers nothing to assign on «Семейный»: HD comes with the plan
    page = staff.get(f"/accounts/{on_family.id}").get_data(as_text=True)
    assert "HD-каналы" not in page

    on_premium = gen_account(agent=tv_agent, tariff=premium, login="premium_tv")
    acc.assign_service(on_premium, {"service_id": hd.id}, actor="test")
    db.session.commit()
    assert reconcile_account("stalker", on_premium.id) == "ok"
    assert reconcile_account("stalker", on_family.id) == "ok"
    hd_internal = next(p["id"] for p in plans.packages.values() if p["external_id"] == "hd-pack")
    assert plans.find(login="premium_tv")["subscribed"] == {hd_internal}
    assert plans.find(login="family_tv")["subscribed"] == set()

    # to «Семейный», where HD comes with the plan: the HD service ends (the rest of the month
    # refunded) and Stalker is not asked to switch it
    acc.update_account(on_premium, {"tariff_id": family.id}, actor="test")
    db.session.commit()
    assert [s.state for s in on_premium.services if s.service_id == hd.id] == ["ended"]
    assert reconcile_account("stalker", on_premium.id) == "ok"
    user = plans.find(login="premium_tv")
    assert plans.plans[user["plan_id"]]["external_id"] == FAMILY


def test_a_plan_without_a_usable_external_id_is_refused_naming_the_field(staff, stalker):
    """A plan whose external_id is longer than Stalker allows (or empty) is refused with the
    field named, and nothing is written."""
    stalker.add_plan("x" * 65, "Слишком длинный")
    console.refresh(("tariffs",), actor="test")
    r = post(staff, f"/stalker/tariffs/{row_id('tariffs', 'x' * 65)}/import", {}, headers=HX)
    assert r.status_code == 422 and "external_id" in r.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(Tariff).filter_by(name="Слишком длинный")) == 0
