"""The forecast where people see it: the cabinet's balance block, the contract page in admin, and
the admin's low-balance settings. These run on today's date (BILLING_TZ), whatever it is."""
from __future__ import annotations

from decimal import Decimal

from babel.dates import format_date

from portal.billing import clock, forecast, ledger
from portal.extensions import db
from tests.builders import gen_account, gen_contract, gen_service, gen_subscriber, gen_tariff
from tests.helpers import CABINET_PASSWORD, cabinet_login, english, field_error, post, staff_in_english


def monthly_short():
    """A cabinet subscriber with a 900.00 monthly service, paid for this month, whose money
    does not cover next month: it lasts to this month's end."""
    s = gen_subscriber(full_name="Абонент Прогноз", cabinet_login="prognoz", cabinet_password=CABINET_PASSWORD)
    c = gen_contract(s)
    ledger.payment(c.id, Decimal("950.00"), actor="t", external_id="seed-prognoz")
    db.session.commit()
    svc = gen_service("900.00")
    gen_account(contract=c, tariff=gen_tariff([svc]), services=[svc])
    today = clock.today()
    return c, (clock.month_end(today) - today).days, clock.month_end(today)


def test_cabinet_balance_block_says_how_long_the_money_lasts(app, client, ctx):
    """Does my cabinet tell me for how many days my money lasts, and until which day?"""
    c, days, until = monthly_short()
    html = cabinet_login(client, "prognoz", lang="ru", follow=True).get_data(as_text=True)
    if days:
        word = "день" if days % 10 == 1 and days % 100 != 11 else (
            "дня" if days % 10 in (2, 3, 4) and days % 100 not in (12, 13, 14) else "дней")
        assert f"Хватит на {days} {word}, до {format_date(until, 'short', locale='ru')}" in html
    else:  # the last day of a month: tomorrow's charge is not covered
        assert "Не хватит на списание 900,00" in html
    assert f'data-forecast-days="{days}"' in html


def test_contract_page_shows_the_forecast(app, client, ctx):
    """Does staff's contract page show when the money runs out?"""
    c, days, until = monthly_short()
    staff_in_english(client)
    html = client.get(f"/contracts/{c.id}").get_data(as_text=True)
    assert f'data-forecast-days="{days}" data-forecast-until="{until.isoformat()}"' in html
    if days:
        assert f"until {format_date(until, 'short', locale='en')}" in html


def test_no_forecast_when_the_money_covers(app, client, ctx):
    """A contract whose money covers the next two months shows no forecast."""
    s = gen_subscriber(cabinet_login="rich", cabinet_password=CABINET_PASSWORD)
    c = gen_contract(s)
    ledger.payment(c.id, Decimal("5000.00"), actor="t", external_id="seed-rich")
    db.session.commit()
    svc = gen_service("900.00")
    gen_account(contract=c, tariff=gen_tariff([svc]), services=[svc])
    html = cabinet_login(client, "rich", follow=True).get_data(as_text=True)
    assert "data-forecast-days" not in html


def test_admin_sets_the_thresholds(app, client, ctx):
    """Can an admin set the thresholds, is a bad list refused beside the field (nothing saved),
    and is the page for admins only?"""
    staff_in_english(client)
    page = client.get("/low-balance")
    assert page.status_code == 200 and 'value="7, 3, 1"' in page.get_data(as_text=True)
    bad = post(client, "/low-balance", {"enabled": "1", "thresholds": "7, 0"})
    assert bad.status_code == 422
    assert field_error(bad.get_data(as_text=True), "thresholds") == "each from 1 to 31 days"
    ok = post(client, "/low-balance", {"enabled": "1", "thresholds": "10; 5, 2"}, follow_redirects=True)
    assert ok.status_code == 200 and "Low-balance warnings saved." in ok.get_data(as_text=True)
    db.session.expire_all()
    row = forecast.settings()
    assert (row.enabled, forecast.thresholds_of(row)) == (True, [2, 5, 10])


def test_managers_may_not_change_the_thresholds(app, client, ctx):
    staff_in_english(client, role="manager")
    assert client.get("/low-balance").status_code == 403
    english(client)
    assert post(client, "/low-balance", {"enabled": "1", "thresholds": "3"}).status_code == 403


def test_russian_error_on_the_settings_page(app, client, ctx):
    """An admin reading Russian sees the error in Russian."""
    from tests.builders import gen_staff
    from tests.helpers import login

    gen_staff("adm", role="admin")
    login(client, "adm")
    bad = post(client, "/low-balance", {"enabled": "1", "thresholds": "3, 3"})
    assert field_error(bad.get_data(as_text=True), "thresholds") == "каждое число дней только один раз"
