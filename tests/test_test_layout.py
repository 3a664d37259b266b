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


# -- fixtures: registered once, through conftest.py's pytest_plugins --------------------------

SHARED = ["conftest.py", "builders.py", *sorted(p.name for p in TESTS.glob("*_fixtures.py"))]


def fixtures_defined(source: str) -> set[str]:
    """The names of the fixtures a module defines (functions under ``@pytest.fixture``, with or
    without arguments, or ``@fixture``)."""
    names = set()
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for d in node.decorator_list:
                target = d.func if isinstance(d, ast.Call) else d
                if ast.unparse(target) in ("pytest.fixture", "fixture"):
                    names.add(node.name)
    return names


def shared_fixtures() -> dict[str, set[str]]:
    """Fixture names by the shared module (tests.x) that defines them."""
    return {f"tests.{name[:-3]}": fixtures_defined((TESTS / name).read_text(encoding="utf-8")) for name in SHARED}


def imported_fixtures(source: str, fixtures: dict[str, set[str]]) -> list[str]:
    """The fixtures a module imports from the shared modules; and a ``pytest_plugins`` of its own."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module in fixtures:
            found += [f"{node.module}.{a.name}" for a in node.names if a.name in fixtures[node.module]]
        elif isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "pytest_plugins" for t in node.targets):
            found.append("pytest_plugins = ...")
    return found


def conftest_plugins() -> list[str]:
    for node in ast.parse((TESTS / "conftest.py").read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "pytest_plugins" for t in node.targets):
            return ast.literal_eval(node.value)
    return []


def test_the_fixture_checks_see_a_fixture_and_its_import():
    source = "import pytest\n@pytest.fixture\ndef a(): ...\n@pytest.fixture(scope='module')\ndef b(): ...\ndef c(): ..."
    assert fixtures_defined(source) == {"a", "b"}
    shared = {"tests.x_fixtures": {"a", "b"}}
    assert imported_fixtures("from tests.x_fixtures import a, c  # noqa: F401", shared) == ["tests.x_fixtures.a"]
    assert imported_fixtures("def f():\n    from tests.x_fixtures import b", shared) == ["tests.x_fixtures.b"]
    assert imported_fixtures("pytest_plugins = ['tests.x_fixtures']", shared) == ["pytest_plugins = ..."]
    assert imported_fixtures("from tests.x_fixtures import c", shared) == []


def test_conftest_loads_every_fixtures_module():
    """A fixtures module missing from pytest_plugins would tempt a test module to import it."""
    plugins = conftest_plugins()
    missing = [f"tests.{p.stem}" for p in sorted(TESTS.glob("*_fixtures.py")) if f"tests.{p.stem}" not in plugins]
    assert not missing, f"add to pytest_plugins in tests/conftest.py: {missing}"


def test_no_test_module_imports_a_fixture():
    """Test modules name the fixtures they use as parameters; pytest finds them through
    conftest.py. (Helpers, constants and builders from the same modules may be imported.)"""
    fixtures = shared_fixtures()
    offenders = [f"{path.name}: {m}" for path in sorted(TESTS.glob("test_*.py"))
                 for m in imported_fixtures(path.read_text(encoding="utf-8"), fixtures)]
    assert not offenders, "use the fixture as a parameter instead:\n  " + "\n  ".join(offenders)


def test_no_two_shared_modules_define_a_fixture_of_the_same_name():
    """pytest would silently give every test one of them (the last plugin loaded): the three
    platform emulators are stalker_emulator, smotreshka_emulator and intercom_emulator."""
    where: dict[str, list[str]] = {}
    for module, names in shared_fixtures().items():
        for name in names:
            where.setdefault(name, []).append(module)
    clashes = {name: modules for name, modules in where.items() if len(modules) > 1}
    assert not clashes, f"rename one of each: {clashes}"
