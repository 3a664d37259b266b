"""Billing domain logic: no HTTP here. Views, API, CLI and jobs call these functions.

Each function changes the session but does not commit; the caller owns the transaction,
so a request or a job either lands whole or not at all.
"""
