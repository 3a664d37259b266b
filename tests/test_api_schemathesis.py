"""API v1 against its own OpenAPI document, fuzzed by schemathesis: whatever a client sends,
valid by the document or not, no answer is a 5xx, and every answer matches the documented
status codes, content type and schema.

Each operation is driven in-process through the WSGI app with an admin token, on seeded
data: positive and negative examples, then positive ones aimed at the seeded rows;
derandomized so that a run is repeatable.
(The schemathesis pytest plugin's lazy loader does not work with pytest 9, so the test loops
over the operations itself, one subtest per operation and mode.)
"""
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance, content_type_conformance]
BUDGET = settings(max_examples=25, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck),
                  database=None)


def test_api_conforms_to_openapi(app, seeded, subtests):
    """Does every operation answer whatever is thrown at it without a server error, as documented?"""
    token, ids = seeded
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    headers = {"Authorization": f"Bearer {token}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 30
    for operation in operations:
        # Random ids mostly miss, so a third pass aims the path and the body's ids at the seeded rows.
        on_rows = {name: ids[name] for name in ids if f"{{{name}}}" in operation.path}
        passes = [("positive", {"generation_mode": GenerationMode.POSITIVE}, False),
                  ("negative", {"generation_mode": GenerationMode.NEGATIVE}, False),
                  ("seeded rows", {"path_parameters": on_rows}, True)]
        for name, kwargs, aim in passes:
            with subtests.test(msg=f"{operation.label} ({name})"):

                @BUDGET
                @given(case=operation.as_strategy(headers=headers, **kwargs))
                def call(case):
                    if aim and isinstance(case.body, dict):  # noqa: B023 - call() runs within this iteration
                        case.body.update({k: v for k, v in ids.items() if k in case.body})
                    case.call_and_validate(headers=headers, checks=CHECKS)

                call()
