"""The operator's day (issue 16): small things staff notice at once."""
from __future__ import annotations

import re

from tests.builders import gen_account, gen_staff
from tests.test_admin_dashboard import login


def _input(html: str, name: str) -> str:
    return re.search(rf'<input name="{name}"[^>]*>', html).group(0)


def test_password_fields_ask_for_a_new_password_not_the_operators_own(app, client):
    """A subscriber's cabinet password and a service password are new passwords: the browser's
    password manager must not fill in the operator's own, and the hint reads as a hint."""
    with app.app_context():
        a = gen_account()
        aid, sid = a.id, a.contract.subscriber_id
        gen_staff("boss")
    login(client, "boss")
    for url, name in ((f"/subscribers/{sid}?lang=en", "cabinet_password"), (f"/accounts/{aid}?lang=en", "password")):
        field = _input(client.get(url).get_data(as_text=True), name)
        assert 'autocomplete="new-password"' in field and 'placeholder="leave empty to keep"' in field, field
        assert "&#34;" not in field and "&quot;" not in field


def test_a_disabled_accounts_services_read_as_not_in_force(app, client):
    """A disabled account lists its services as disabled, with no suspend or end buttons."""
    from portal.billing import accounts as acc
    from portal.extensions import db
    from tests.builders import gen_service

    with app.app_context():
        a = gen_account(services=[gen_service(name="Кино")])
        acc.disable(a, actor="t")
        db.session.commit()
        aid = a.id
        gen_staff("boss3")
    login(client, "boss3")
    html = client.get(f"/accounts/{aid}?lang=en").get_data(as_text=True)
    row = re.search(r'<tr data-service="Кино">.*?</tr>', html, re.S).group(0)
    assert "disabled" in row and "active" not in row
    assert "Suspend" not in row and ">End<" not in row


def test_the_top_bar_names_the_staff_member_once_and_the_site_has_an_icon(app, client):
    """"Администратор · Администратор" read twice; every page names an icon that is served."""
    from portal.extensions import db

    with app.app_context():
        gen_staff("chief").full_name = "Администратор"
        db.session.commit()
    login(client, "chief")
    page = client.get("/?lang=ru").get_data(as_text=True)
    who = re.search(r'<span class="who">(.*?)</span>', page, re.S).group(1).strip()
    assert who == "Администратор"
    icon = re.search(r'<link rel="icon"[^>]*href="([^"]+)"', page).group(1)
    r = client.get(icon)
    assert r.status_code == 200 and r.mimetype == "image/svg+xml"
