"""Fixtures for the API tests: seeded rows and an admin token (the schemathesis runs aim their
requests at these ids). Loaded for every test by conftest's ``pytest_plugins``."""
from __future__ import annotations

from decimal import Decimal

import pytest

from portal.billing import ledger
from portal.extensions import db
from tests.builders import gen_account, gen_agent, gen_service, gen_tariff, gen_token


@pytest.fixture
def seeded(app):
    """An admin token and a little of everything; returns the token and the ids of the rows."""
    with app.app_context():
        token = gen_token("admin")
        svc = gen_service("300.00")
        tariff = gen_tariff([svc])
        account = gen_account(agent=gen_agent(platform="webhook"), tariff=tariff, services=[svc])
        ledger.payment(account.contract_id, Decimal("1000"), actor="test", external_id="seed")
        db.session.commit()
        ids = {"subscriber_id": account.contract.subscriber_id, "contract_id": account.contract_id,
               "account_id": account.id, "agent_id": account.agent_id, "service_id": svc.id,
               "tariff_id": tariff.id, "assigned_id": account.services[0].id}
        db.session.remove()
    return token, ids
