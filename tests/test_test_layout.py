"""The suite's own layout: helpers and fixtures live in tests/helpers.py, tests/builders.py and
tests/*_fixtures.py, so a test module never imports another (importing one runs its module
code again and ties their edits together)."""
from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def imported_test_modules(source: str) -> list[str]:
    """What a module's source imports from test modules (``tests.test_x``, ``.test_x``)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").split(".")[0] == "tests"):
            parts = [p for p in (node.module or "").split(".") if p] + [a.name for a in node.names]
            if any(p.startswith("test_") for p in parts):
                found.append("." * node.level + ".".join(parts))
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names
                      if a.name.startswith("tests.") and any(p.startswith("test_") for p in a.name.split("."))]
    return found


def test_the_check_sees_each_way_of_importing_a_test_module():
    assert imported_test_modules("from tests.test_cabinet import cabinet_login") == ["tests.test_cabinet.cabinet_login"]
    assert imported_test_modules("from .test_cabinet import x") == [".test_cabinet.x"]
    assert imported_test_modules("from . import test_cabinet") == [".test_cabinet"]
    assert imported_test_modules("from tests import test_cabinet") == ["tests.test_cabinet"]
    assert imported_test_modules("import tests.test_cabinet") == ["tests.test_cabinet"]
    assert imported_test_modules("def f():\n    from tests.test_sync import converged") == ["tests.test_sync.converged"]
    assert imported_test_modules("from tests.helpers import post\nfrom tests.stalker_fixtures import row_id") == []


def test_no_test_module_imports_another():
    offenders = [f"{path.name}: {m}" for path in sorted(TESTS.glob("test_*.py"))
                 for m in imported_test_modules(path.read_text(encoding="utf-8"))]
    assert not offenders, "move the helpers to tests/helpers.py or a *_fixtures.py module:\n  " + "\n  ".join(offenders)
