"""The list of API v1 blueprints (one module per resource)."""


def blueprints():
    from . import (
        account_services,
        account_sync,
        accounts,
        agents,
        contracts,
        payments,
        services,
        subscribers,
        tariffs,
    )

    return [subscribers.bp, contracts.bp, accounts.bp, account_services.bp, account_sync.bp, payments.bp,
            agents.bp, services.bp, tariffs.bp]
