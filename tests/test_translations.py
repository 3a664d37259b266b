"""The Russian catalog: complete for the code as it is now, placeholders intact, and in use.

Russian is the default UI language, so a string added to a template or to Python without a
Russian translation shows up in English on a Russian page. These tests extract the messages
from the current code the way babel.cfg says (the same as `pybabel extract -F babel.cfg -k _l
-k lazy_gettext`) and compare them with translations/ru/LC_MESSAGES/messages.po.

To fix a failure: pybabel extract ... -o translations/messages.pot . ; pybabel update -i
translations/messages.pot -d translations -l ru --no-fuzzy-matching ; translate ; pybabel
compile -d translations.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
PO = ROOT / "translations" / "ru" / "LC_MESSAGES" / "messages.po"
MO = PO.with_suffix(".mo")
# The keywords the code uses: babel's defaults (_, gettext, ngettext, ...) plus the lazy ones.
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "lazy_gettext": None, "_l": None}
PLACEHOLDER = re.compile(r"%\(\w+\)[-#0 +]*\d*(?:\.\d+)?[sdifr]|%%")


def _extracted() -> Catalog:
    with open(ROOT / "babel.cfg", encoding="utf-8") as f:
        method_map, options_map = parse_mapping_cfg(f)
    catalog = Catalog()
    for filename, lineno, message, comments, context in extract_from_dir(
            str(ROOT), method_map, options_map, keywords=KEYWORDS, strip_comment_tags=True):
        catalog.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    return catalog


@pytest.fixture(scope="module")
def code_messages() -> Catalog:
    return _extracted()


@pytest.fixture(scope="module")
def ru() -> Catalog:
    with open(PO, "rb") as f:
        return read_po(f, locale="ru")


def _ids(message) -> tuple[str, ...]:
    return tuple(message.id) if isinstance(message.id, (list, tuple)) else (message.id,)


def _strings(message) -> tuple[str, ...]:
    return tuple(message.string) if isinstance(message.string, (list, tuple)) else (message.string,)


def test_extraction_finds_the_code_messages(code_messages):
    """Does the extraction actually see the Python and template strings (is babel.cfg right)?"""
    ids = {m.id for m in code_messages if m.id}
    # one from a template, one from Python via _l, one from Python via gettext-as-_
    assert {"Log in", "Subscribers", "Wrong login or password."} <= ids
    assert len(ids) > 100


def test_every_message_has_a_russian_translation(code_messages, ru):
    """Is there a string on the pages that Russian users would see in English?"""
    missing = []
    for m in code_messages:
        if not m.id:
            continue
        t = ru.get(m.id, context=m.context)
        if t is None or t.fuzzy or not all(s and s.strip() for s in _strings(t)):
            where = ", ".join(f"{f}:{n}" for f, n in m.locations[:2])
            state = "absent" if t is None else "fuzzy" if t.fuzzy else "empty"
            missing.append(f"{_ids(m)[0]!r} ({state}; {where})")
    assert not missing, (
        f"{len(missing)} message(s) without a Russian translation in {PO.relative_to(ROOT)} "
        "(run pybabel extract + update, then translate):\n  " + "\n  ".join(missing))


def test_translations_keep_the_placeholders(ru):
    """Does every translation keep the %(name)s placeholders of its English original?

    A plural entry (ngettext) has a msgid, a msgid_plural and one msgstr per plural form of the
    language (three in Russian): each form must keep the placeholders of the plural msgid (or of
    the singular one, when that has fewer), not those of both msgids put together."""
    wrong = []
    for m in ru:
        if not m.id or not m.string:
            continue
        expected = {tuple(sorted(PLACEHOLDER.findall(i))) for i in _ids(m)}
        for s in _strings(m):
            if s and tuple(sorted(PLACEHOLDER.findall(s))) not in expected:
                wrong.append(f"{_ids(m)[0]!r} -> {s!r}")
    assert not wrong, "placeholders differ from the msgid:\n  " + "\n  ".join(wrong)


def test_the_catalog_has_no_fuzzy_entries(ru):
    """Is there a guessed (fuzzy) translation nobody has checked? gettext ignores those."""
    fuzzy = [m.id for m in ru if m.id and m.fuzzy]
    assert not fuzzy, f"fuzzy entries in {PO.name}: {fuzzy}"


@pytest.fixture(scope="module")
def compiled():
    """The app reads the compiled .mo (build output, not in git): compile it if it is older."""
    if not MO.exists() or MO.stat().st_mtime < PO.stat().st_mtime:
        with open(PO, "rb") as f:
            catalog = read_po(f, locale="ru")
        with open(MO, "wb") as f:
            write_mo(f, catalog)


@pytest.mark.parametrize("path, russian, english", [
    ("/login", ["Вход для сотрудников", "Пароль", "Войти"], ["Staff login", "Password", "Log in"]),
    ("/cabinet/login", ["Вход в личный кабинет", "Пароль", "Войти"],
     ["Log in to your account", "Password", "Log in"]),
])
def test_login_pages_speak_russian_by_default_and_english_on_request(client, compiled, path, russian, english):
    """Do the staff and the cabinet login pages come out in Russian, and in English with ?lang=en?"""
    page = client.get(path)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    for word in russian:
        assert word in html, f"{word!r} not on {path} in Russian"
    assert "Staff login" not in html and "Log in to your account" not in html

    page = client.get(path + "?lang=en")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    for word in english:
        assert word in html, f"{word!r} not on {path}?lang=en"
    assert not any(w in html for w in ("Вход для сотрудников", "Вход в личный кабинет"))

    # the choice sticks for the session; ?lang=ru switches back
    assert english[0] in client.get(path).get_data(as_text=True)
    assert russian[0] in client.get(path + "?lang=ru").get_data(as_text=True)
