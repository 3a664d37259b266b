"""The billing core as staff and subscribers meet it: cards, contracts, ledger, lifecycle, audit."""
from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from portal.billing import accounts as acc
from portal.billing import clock, directory, ledger
from portal.billing.crypto import decrypt
from portal.billing.errors import BillingError
from portal.extensions import db
from portal.models import Account, ApiToken, AuditEntry, Contract, LedgerEntry, StaffUser, Subscriber, hash_token
from tests.builders import gen_account, gen_agent, gen_contract, gen_service, gen_subscriber, gen_tariff


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def test_bad_subscriber_card_names_every_bad_field_and_writes_nothing(ctx):
    """Typing a broken card: do I see which fields are wrong, and is nothing half-saved?"""
    with pytest.raises(BillingError) as e:
        directory.save_subscriber({"kind": "alien", "full_name": " ", "email": "nope", "phones": ["abc"],
                                   "cabinet_password": "x"}, actor="t")
    assert set(e.value.fields) >= {"kind", "full_name", "email", "phones", "cabinet_password"}
    db.session.rollback()
    assert count(Subscriber) == 0


def test_contract_number_is_generated_and_unique(ctx):
    """A contract without a number gets one; a taken number is refused by name."""
    c = gen_contract()
    assert c.number and len(c.number) >= 6
    with pytest.raises(BillingError) as e:
        directory.save_contract({"subscriber_id": c.subscriber_id, "number": c.number}, actor="t")
    assert "number" in e.value.fields


def test_several_contracts_per_subscriber(ctx):
    """Can one subscriber hold several contracts, each with its own balance?"""
    s = gen_subscriber()
    a, b = gen_contract(s), gen_contract(s)
    ledger.payment(a.id, "100", actor="t")
    db.session.commit()
    db.session.expire_all()
    assert [c.balance for c in db.session.get(Subscriber, s.id).contracts] == [Decimal("100.00"), Decimal("0.00")]
    assert b.id != a.id


def test_payment_with_the_same_external_id_moves_money_once(ctx):
    """The payment system retried its callback: is the money counted once?"""
    c = gen_contract()
    first, created = ledger.payment(c.id, "500.50", actor="t", external_id="bank-1")
    db.session.commit()
    again, created_again = ledger.payment(c.id, "500.50", actor="t", external_id="bank-1")
    db.session.commit()
    assert created and not created_again and again.id == first.id
    db.session.expire_all()
    assert db.session.get(Contract, c.id).balance == Decimal("500.50")
    with pytest.raises(BillingError) as e:
        ledger.payment(c.id, "1.00", actor="t", external_id="bank-1")
    assert "external_id" in e.value.fields


@pytest.mark.parametrize("amount,field", [("abc", "amount"), ("1.001", "amount"), ("-5", "amount"), ("0", "amount")])
def test_bad_payment_amounts_are_refused(ctx, amount, field):
    """Nonsense amounts are refused with the field named, and no money moves."""
    c = gen_contract()
    with pytest.raises(BillingError) as e:
        ledger.payment(c.id, amount, actor="t")
    assert field in e.value.fields
    db.session.rollback()
    assert count(LedgerEntry) == 0


def test_corrections_go_both_ways_and_the_ledger_explains_the_balance(ctx):
    """Corrections up and down: does the balance equal the sum of the ledger lines?"""
    c = gen_contract()
    ledger.post(c.id, "correction", Decimal("-12.34"), actor="t", comment="ошибка")
    ledger.post(c.id, "correction", Decimal("2.00"), actor="t")
    ledger.post(c.id, "refund", Decimal("1.00"), actor="t")
    db.session.commit()
    rows = db.session.scalars(select(LedgerEntry).filter_by(contract_id=c.id)).all()
    db.session.expire_all()
    assert sum(r.amount for r in rows) == db.session.get(Contract, c.id).balance == Decimal("-9.34")


def test_account_needs_a_unique_login_valid_extra_fields_and_known_references(ctx):
    """Creating an account with mistakes names each wrong field."""
    directory.save_extra_field({"name": "isvyaz_login", "title": "Интерсвязь", "pattern": r"[a-z]{3,}"}, actor="t")
    a = gen_account(activate=False)
    with pytest.raises(BillingError) as e:
        acc.create_account({"contract_id": 999, "login": a.login, "agent_id": 999, "tariff_id": 999,
                            "extra": {"isvyaz_login": "X1", "nope": "1"}}, actor="t")
    assert set(e.value.fields) == {"contract_id", "login", "agent_id", "tariff_id", "extra.isvyaz_login",
                                   "extra.nope"}


def test_account_password_is_stored_encrypted_and_extra_fields_kept(ctx):
    """The service password can be sent to platforms, but is not readable in the database."""
    directory.save_extra_field({"name": "isvyaz_login", "title": "Интерсвязь"}, actor="t")
    a = gen_account(activate=False, password="s3cret-pass", extra={"isvyaz_login": "flat12"})
    assert "s3cret-pass" not in (a.password_enc or "")
    assert decrypt(a.password_enc) == "s3cret-pass"
    assert a.extra == {"isvyaz_login": "flat12"}


def test_lifecycle_activate_block_unblock_disable(ctx):
    """An account goes inactive -> active -> blocked (manager) -> active -> disabled, each step audited."""
    c = gen_contract()
    ledger.payment(c.id, "1000", actor="t")
    db.session.commit()
    a = gen_account(contract=c, activate=False)
    assert a.status == "inactive"
    acc.activate(a, actor="staff:boss")
    acc.block(a, "manager", actor="staff:boss")
    assert (a.status, a.reasons) == ("blocked", ["manager"])
    with pytest.raises(BillingError):
        acc.unblock(a, "subscriber", actor="t")
    acc.unblock(a, "manager", actor="staff:boss")
    assert a.status == "active"
    acc.disable(a, actor="staff:boss")
    db.session.commit()
    assert a.status == "disabled"
    actions = db.session.scalars(select(AuditEntry.action).filter_by(object_type="account", object_id=a.id)
                                 .order_by(AuditEntry.id)).all()
    assert actions[-4:] == ["account.activate", "account.block", "account.unblock", "account.disable"]
    last = db.session.scalars(select(AuditEntry).filter_by(action="account.disable")).one()
    assert last.actor == "staff:boss" and last.before["status"] == "active" and last.after["status"] == "disabled"


def test_only_services_the_tariffs_offer_can_be_assigned(ctx):
    """A service outside the account's tariff and multi-tariffs is refused; a multi-tariff adds its services."""
    tv = gen_service("100")
    a = gen_account()
    with pytest.raises(BillingError) as e:
        acc.assign_service(a, {"service_id": tv.id}, actor="t")
    assert "service_id" in e.value.fields
    multi = gen_tariff([tv], is_multi=True)
    acc.update_account(a, {"multi_tariff_ids": [multi.id]}, actor="t")
    assigned = acc.assign_service(a, {"service_id": tv.id}, actor="t")
    db.session.commit()
    assert assigned.state == "active"


def test_changing_tariff_moves_the_fee_and_ends_services_no_longer_offered(ctx):
    """Switching tariffs: the old fee is refunded for the rest of the month, the new one charged."""
    c = gen_contract()
    ledger.payment(c.id, "5000", actor="t")
    db.session.commit()
    old = gen_tariff([], monthly_fee="300.00")
    new = gen_tariff([], monthly_fee="600.00")
    with clock.as_of(date(2026, 9, 1)):
        a = gen_account(contract=c, tariff=old)
    with clock.as_of(date(2026, 9, 16)):
        acc.update_account(a, {"tariff_id": new.id}, actor="t")
        db.session.commit()
    db.session.expire_all()
    # old: 15 days of 300 = 150; new: 15 days of 600 = 300
    assert db.session.get(Contract, c.id).balance == Decimal("5000") - Decimal("150") - Decimal("300")
    states = sorted((s.service_id, s.state) for s in db.session.get(Account, a.id).services)
    assert states == [(old.fee_service_id, "ended"), (new.fee_service_id, "active")]


def test_staff_create_prompts_for_a_password_and_hashes_it(app, ctx):
    """`flask staff create --login L --role R` asks for the password and never stores it plainly."""
    result = app.test_cli_runner().invoke(args=["staff", "create", "--login", "olga", "--role", "manager"],
                                          input="long-password\nlong-password\n")
    assert result.exit_code == 0, result.output
    user = db.session.scalar(select(StaffUser).filter_by(login="olga"))
    assert user.role == "manager" and user.password_hash != "long-password" and user.check_password("long-password")


def test_api_token_create_prints_the_token_once_and_stores_its_hash(app, ctx):
    """The token is printed once; the database only has its hash."""
    result = app.test_cli_runner().invoke(args=["api-token", "create", "--name", "1c", "--role", "manager"])
    token = result.output.strip()
    row = db.session.scalar(select(ApiToken).filter_by(name="1c"))
    assert token.startswith("pt_") and row.token_hash == hash_token(token) and token not in row.token_hash


def test_billing_charge_cli_for_a_date(app, ctx):
    """`flask billing charge --date` charges that day and says what it did."""
    svc = gen_service("300.00")
    c = gen_contract()
    ledger.payment(c.id, "1000", actor="t")
    db.session.commit()
    with clock.as_of(date(2026, 8, 31)):
        gen_account(contract=c, services=[svc])
    result = app.test_cli_runner().invoke(args=["billing", "charge", "--date", "2026-09-01"])
    assert result.exit_code == 0 and "1 entries" in result.output and "charged 300.00" in result.output


def test_agent_kinds_and_platforms_are_checked(ctx):
    """Agents take only the known kinds and platforms."""
    with pytest.raises(BillingError) as e:
        directory.save_agent({"name": "x", "kind": "teleport", "platform": "nowhere"}, actor="t")
    assert set(e.value.fields) == {"kind", "platform"}
    assert gen_agent("iptv").kind == "iptv"


def test_a_payment_tells_the_accounts_platforms(ctx):
    """After a payment, does the platform behind my account get to hear of the new balance?"""
    from portal.models import OutboxEvent

    a = gen_account(agent=gen_agent("services", platform="webhook"), activate=False)
    ledger.payment(a.contract_id, "100", actor="t", external_id="pay-1")
    db.session.commit()
    reasons = db.session.scalars(select(OutboxEvent.reason).filter_by(account_id=a.id, platform="webhook")).all()
    assert "ledger.payment" in reasons


def test_search_ignores_case_in_cyrillic(client, ctx):
    """Typing «иванов» finds «Иванов Иван» on every database."""
    from tests.builders import gen_token

    gen_subscriber(full_name="Иванов Иван Иванович")
    gen_subscriber(full_name="Петров Пётр")
    r = client.get("/api/v1/subscribers?q=иванов", headers={"Authorization": f"Bearer {gen_token('viewer')}"})
    assert [s["full_name"] for s in r.get_json()["items"]] == ["Иванов Иван Иванович"]
    assert "Иванов" in r.get_data(as_text=True)  # readable, not \\u-escaped


def test_names_are_trimmed_before_the_uniqueness_check(ctx):
    """«Услуги » next to «Услуги» is the same name, refused by name instead of failing at save."""
    gen_agent(name="Услуги")
    with pytest.raises(BillingError) as e:
        directory.save_agent({"name": "Услуги ", "kind": "services"}, actor="t")
    assert e.value.fields == {"name": "already taken"}
