"""The balance rule for the contracts it is given (portal.billing.blocking): for several at
once and for one (on PostgreSQL one statement that also keeps below_limit_since), it blocks the
short, lifts the paid and touches no contract outside its scope."""
from __future__ import annotations

from decimal import Decimal

from portal.billing import blocking, clock, ledger
from portal.extensions import db
from portal.models import Account, Contract
from tests.builders import gen_account, gen_contract


def fresh(model, ident):
    db.session.expire_all()
    return db.session.get(model, ident)


def contract_with_account(owe: str = "", pay: str = "") -> tuple[int, int]:
    """A contract with an active account on a free tariff; then, without the balance rule, a
    debit of ``owe`` and a credit of ``pay``."""
    c = gen_contract()
    a = gen_account(contract=c)
    for amount in (-Decimal(owe or "0"), Decimal(pay or "0")):
        if amount:
            ledger.post(c.id, "correction", amount, actor="t", apply_rules=False)
    db.session.commit()
    return c.id, a.id


def test_the_rule_blocks_the_short_lifts_the_paid_and_leaves_the_rest_alone(ctx):
    short_c, short_a = contract_with_account(owe="50.00")
    paid_c, paid_a = contract_with_account(owe="50.00")
    assert blocking.balance_rule([paid_c], actor="t") == ([paid_a], [])  # one contract: blocked
    ledger.post(paid_c, "correction", Decimal("80.00"), actor="t", apply_rules=False)
    other_c, other_a = contract_with_account(owe="50.00")
    db.session.commit()

    blocked, lifted = blocking.balance_rule([short_c, paid_c], actor="t")  # two at once
    db.session.commit()
    assert (blocked, lifted) == ([short_a], [paid_a])
    assert (fresh(Account, short_a).reasons, fresh(Account, paid_a).status) == (["balance"], "active")
    assert fresh(Contract, short_c).below_limit_since == clock.today()
    assert fresh(Contract, paid_c).below_limit_since is None
    # out of scope: short, but neither blocked nor counted as below its limit yet
    assert (fresh(Account, other_a).status, fresh(Contract, other_c).below_limit_since) == ("active", None)

    assert blocking.balance_rule([other_c], actor="t") == ([other_a], [])
    db.session.commit()
    assert fresh(Account, other_a).reasons == ["balance"]
    assert fresh(Contract, other_c).below_limit_since == clock.today()
    assert blocking.balance_rule([short_c, paid_c, other_c], actor="t") == ([], [])  # nothing left to do
