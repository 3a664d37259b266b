"""Does the OpenAPI document state the constraints the server enforces?

Data the document calls invalid is refused (schemathesis' negative_data_rejection), and data
it calls valid is not refused as invalid, except by the rules no OpenAPI 3.0 document can
state: other rows (exists, already taken), the object's state, one field depending on
another. Each such refusal must name only messages from that short list (STATEFUL); any
other 400/422 to valid data means the document is looser than the server.
"""
from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import negative_data_rejection

BUDGET = settings(max_examples=25, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck),
                  database=None)
# billing's messages for rules that depend on other rows, the object's state or another field
STATEFUL = {
    "already taken", "not found", "no such agent", "no such contract", "no such subscriber",
    "no such tariff", "no such service", "no such extra field", "unknown service id",
    "each must be an existing multi-tariff", "a multi-tariff cannot be the main tariff",
    "the account's tariffs do not offer this service", "the account is disabled",
    "the service has ended already", "required with a platform", "required with a cabinet password",
    "a date not before the start", "a date not before starts_on", "an account needs a tariff to be activated",
    "active or suspended, on a service that has not ended", "already disabled", "required",
    "the account has this service already",
    # no schema keyword says "a regular expression that compiles"
    "not a valid regular expression",
}
STATEFUL_PREFIXES = ("cannot activate an account that is", "cannot block an account that is",
                     "already blocked by", "the account is not blocked by", "does not match")


def unexplained(errors: dict) -> dict:
    """The refusals a document could have stated (an extra field's own "required" or pattern
    comes from the database's extra-field definitions: stateful too)."""
    return {k: v for k, v in errors.items()
            if not k.startswith("extra.") and v not in STATEFUL and not v.startswith(STATEFUL_PREFIXES)}


def test_the_document_is_as_strict_as_the_server(app, seeded):  # noqa: F811
    """Is every request the document allows accepted, and every one it forbids refused?"""
    token, ids = seeded
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    headers = {"Authorization": f"Bearer {token}"}
    failures = []
    for operation in [result.ok() for result in schema.get_all_operations()]:
        if operation.method.upper() not in ("POST", "PUT", "PATCH") or not list(operation.body):
            continue
        # positive data on the seeded rows: a missing row is a refusal no document can state
        on_rows = {name: ids[name] for name in ids if f"{{{name}}}" in operation.path}

        @BUDGET
        @given(case=operation.as_strategy(headers=headers, generation_mode=GenerationMode.POSITIVE,
                                          path_parameters=on_rows))
        def positive(case):
            if isinstance(case.body, dict):
                case.body.update({k: v for k, v in ids.items() if k in case.body})
            response = case.call(headers=headers)
            if response.status_code in (400, 422):
                errors = response.json().get("errors") or {"_": response.json().get("message")}
                assert not unexplained(errors), f"{case.body!r} -> {errors}"

        @BUDGET
        @given(case=operation.as_strategy(headers=headers, generation_mode=GenerationMode.NEGATIVE))
        def negative(case):
            case.call_and_validate(headers=headers, checks=[negative_data_rejection])

        for mode, run in (("positive", positive), ("negative", negative)):
            try:
                run()
            except (Exception, BaseExceptionGroup) as e:  # noqa: BLE001  (collected: every operation at fault)
                inner = e.exceptions[0] if isinstance(e, BaseExceptionGroup) else e
                failures.append(f"{operation.label} ({mode}): {str(inner).strip()[:300]}")
    assert not failures, f"{len(failures)} operations:\n" + "\n".join(failures)
