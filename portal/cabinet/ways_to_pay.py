"""Every way a subscriber can pay, on the cabinet's contract page: online (the pay form,
cabinet/online_payment.py) and each enabled payment agent (a bank, a terminal network) with the
identifier to give it: the contract number or an account's login, per the agent's setting."""
from __future__ import annotations

from ..billing.agent_payments import identifiers_for
from ..models import Contract
from . import bp


def cabinet_agents(contract: Contract) -> list[tuple[str, str, list[str]]]:
    return identifiers_for(contract)


bp.add_app_template_global(cabinet_agents, "cabinet_agents")
