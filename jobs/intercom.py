"""«Интерсвязь» jobs: look a login up, check the connection, check every profile for drift
(portal.platforms.intercom.console does the work; progress and results go to ``job.meta``
for the admin's progress rows)."""
from __future__ import annotations

from portal.platforms.intercom import console

from . import in_app_context, report


@in_app_context
def lookup_login(login: str) -> dict:
    """The answer is the job's return value (a dict); the lookup fragment draws it."""
    return console.lookup(login)


@in_app_context
def check_connection() -> dict:
    result = console.check_connection()
    if not result["reachable"]:
        text = f"unreachable: {result['error']}"
    elif not result["token_ok"]:
        text = f"reachable, API key refused: {result['error']}"
    else:
        text = "reachable, API key accepted"
    report(result=text, check=result)
    return result


@in_app_context
def check_profiles() -> dict:
    result = console.check_profiles(progress=lambda text: report(progress=text))
    report(result=f"profiles {result['profiles']}, missing {result['missing']}, "
                 f"accounts with drift {result['drifted_accounts']} (queued for sync)")
    return result
