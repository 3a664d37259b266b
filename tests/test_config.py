"""Settings: does every environment variable the README documents change the settings?

The list comes from the README itself (the configuration table's first column, and every
other `NAME_WITH_UNDERSCORES` in backquotes), so a variable documented later and never read
by ``config.load`` fails here."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from portal import config

README = Path(__file__).resolve().parent.parent / "README.md"

# values tried in turn until one is accepted and changes the settings: a number, a time zone,
# a list of times, a span of hours, URLs, and free text cover every kind of setting the README lists
CANDIDATES = ["7", "2", "Asia/Tokyo", "01:02,03:04", "01:02-03:04", "postgresql://u@db.example/other",
              "redis://redis.example:6379/3", "unusual-value-1", "https://candidate.example"]


def documented_variables() -> list[str]:
    text = README.read_text()
    names: set[str] = set()
    table = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    for line in table.splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`([A-Z][A-Z0-9_]*)`", line.split("|")[1]))
    names.update(re.findall(r"`([A-Z][A-Z0-9]*_[A-Z0-9_]+)`", text))
    return sorted(names)


def test_readme_lists_the_settings_we_know():
    """Is the README's list read at all (the parser would otherwise pass vacuously)?"""
    names = documented_variables()
    for known in ("DATABASE_URL", "PORT", "BILLING_TZ", "STALKER_REFRESH_INTERVAL", "BILLMANAGER_TIMEOUT"):
        assert known in names
    assert "OFFSET" not in names  # SQL, not a setting


@pytest.mark.parametrize("name", documented_variables())
def test_documented_variable_is_read_by_config_load(name, monkeypatch):
    """When an operator sets a variable the README documents, do the settings change?"""
    monkeypatch.delenv(name, raising=False)
    try:
        before = config.load()
    except config.ConfigError:  # a required one (secrets with DATABASE_URL): compare two values
        monkeypatch.setenv(name, "baseline-value")
        before = config.load()
    tried = []
    for value in CANDIDATES:
        monkeypatch.setenv(name, value)
        try:
            after = config.load()
        except (ValueError, config.ConfigError) as e:
            tried.append(f"{value!r}: {e}")
            continue
        if after != before:
            return
        tried.append(f"{value!r}: no change")
    pytest.fail(f"{name} is documented in the README but config.load ignores it ({'; '.join(tried)})")


def test_stalker_refresh_interval_reaches_the_schedule(monkeypatch):
    """Does STALKER_REFRESH_INTERVAL set how often the Stalker console's snapshot refreshes?"""
    from jobs.schedules import periodic

    monkeypatch.setenv("STALKER_REFRESH_INTERVAL", "120")
    (job,) = [j for j in periodic(config.load()) if j["name"] == "stalker-refresh"]
    assert job["interval"] == 120


def test_smotreshka_resync_times_reach_the_schedule(monkeypatch):
    """Do SMOTRESHKA_RESYNC_TIMES set the «Смотрёшка» re-sync crons?"""
    from jobs.schedules import periodic

    monkeypatch.setenv("SMOTRESHKA_RESYNC_TIMES", "05:30")
    assert [job["cron"] for job in periodic(config.load()) if job["name"].startswith("smotreshka-")] == ["30 5 * * *"]


def test_billmanager_timeout_reaches_the_client(monkeypatch):
    """Does BILLMANAGER_TIMEOUT set the read timeout of the selling BILLmanager's client?"""
    from portal import create_app
    from portal.models import BmHandler
    from portal.platforms.billmanager.handlers import client_for

    monkeypatch.setenv("BILLMANAGER_TIMEOUT", "4.5")
    with create_app({"TESTING": True}).app_context():
        client = client_for(BmHandler(url="http://seller.example/billmgr", username="u", password_enc=None))
    assert client.timeout == 4.5


@pytest.mark.parametrize("value, problem", [
    ("my.isp.ru", "absolute"), ("ftp://my.isp.ru", "absolute"),
    ("https://user:s3cret@my.isp.ru", "user or password"), ("https://u:s3cret@my.isp.ru:abc", "user or password"),
    ("https://my.isp.ru:99999", "port"),
    ("https://my.isp.ru:abc", "port"), ("https://evil.example\\@my.isp.ru", "backslash"),
    ("https://my.isp.ru/por tal", "space"), ("https://my.isp.ru/?a=1", "query"),
])
def test_a_public_url_that_others_could_not_use_stops_the_start(value, problem, monkeypatch):
    """PUBLIC_URL is given to ЮKassa, payment agents and subscribers: a value that is no plain
    http(s) address (a password in it, a bad port, what a browser would read as another host)
    stops the start naming the setting and what is wrong; the secret is not repeated back."""
    monkeypatch.setenv("PUBLIC_URL", value)
    with pytest.raises(config.ConfigError) as e:
        config.load()
    assert "PUBLIC_URL" in str(e.value) and problem in str(e.value) and "s3cret" not in str(e.value)


def test_a_plain_public_url_is_taken_without_its_trailing_slash(monkeypatch):
    monkeypatch.setenv("PUBLIC_URL", " https://isp.ru/portal/ ")
    assert config.load()["PUBLIC_URL"] == "https://isp.ru/portal"
    monkeypatch.setenv("PUBLIC_URL", "http://127.0.0.1:8080")
    assert config.load()["PUBLIC_URL"] == "http://127.0.0.1:8080"
