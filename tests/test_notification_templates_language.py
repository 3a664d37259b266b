"""The subscriber's language (issue 19): staff set it on the card, the cabinet's RU/EN switch
sets it too, the cabinet opens in it, and messages are written in it."""
from __future__ import annotations

import re

from portal.extensions import db
from portal.models import NotificationPreference, Subscriber
from portal.notifications import templates
from tests.builders import subscriber_with_account
from tests.helpers import CABINET_PASSWORD, field_error, form_token, post, staff_in_english


def _card_form(s: Subscriber, **changes) -> dict:
    data = {"kind": s.kind, "full_name": s.full_name, "phones": ", ".join(s.phones), "email": s.email or "",
            "cabinet_login": s.cabinet_login or "", "language": s.language}
    data.update(changes)
    return data


def test_staff_set_the_language_on_the_card(ctx, client):
    """Can staff switch a subscriber to English on the card, and is a language we do not have refused?"""
    s, c, _a = subscriber_with_account("lena")
    db.session.add(NotificationPreference(subscriber_id=s.id, locale="ru"))  # chose their channels before
    db.session.commit()
    staff_in_english(client)
    page = client.get(f"/subscribers/{s.id}").get_data(as_text=True)
    assert re.search(r'<option value="ru" selected>', page)
    r = post(client, f"/subscribers/{s.id}", _card_form(s, language="de"))
    assert r.status_code == 422 and field_error(r.get_data(as_text=True), "language").startswith("must be one of")
    r = post(client, f"/subscribers/{s.id}", _card_form(s, language="en"))
    assert r.status_code == 303
    db.session.expire_all()
    assert db.session.get(Subscriber, s.id).language == "en"
    assert db.session.get(NotificationPreference, s.id).locale == "en"  # what delivery writes in
    assert re.search(r'<option value="en" selected>', client.get(f"/subscribers/{s.id}").get_data(as_text=True))
    # a form without the field (an older page) keeps it
    data = _card_form(s, full_name="Лена Новая")
    data.pop("language")
    assert post(client, f"/subscribers/{s.id}", data).status_code == 303
    db.session.expire_all()
    assert db.session.get(Subscriber, s.id).language == "en"


def test_the_cabinet_opens_in_the_subscribers_language_and_its_switch_sets_it(ctx, app):
    """Does a subscriber whose card says English get the cabinet in English, and does the
    cabinet's RU switch make their messages Russian?"""
    s, c, _a = subscriber_with_account("mark")
    s.language = "en"
    db.session.add(NotificationPreference(subscriber_id=s.id, locale="en"))
    db.session.commit()
    client = app.test_client()
    r = client.post("/cabinet/login", data={"login": "mark", "password": CABINET_PASSWORD,
                                            "csrf_token": form_token(client, "/cabinet/login")})
    assert r.status_code == 302
    with client.session_transaction() as session:
        assert session["lang"] == "en"
    client.get("/cabinet/?lang=ru")
    db.session.expire_all()
    assert db.session.get(Subscriber, s.id).language == "ru"
    assert db.session.get(NotificationPreference, s.id).locale == "ru"
    context = templates.context_for(s, c, {"amount": "10.00"})
    assert templates.render("payment_received", "sms", s.language, context).body.startswith("Платёж")

    # a language picked on the login page is kept for that visit, and the card is not changed by it
    other = app.test_client()
    with other.session_transaction() as session:  # what the login page's EN switch keeps
        session["lang"] = "en"
    other.post("/cabinet/login", data={"login": "mark", "password": CABINET_PASSWORD,
                                       "csrf_token": form_token(other, "/cabinet/login")})
    with other.session_transaction() as session:
        assert session["lang"] == "en"
    db.session.expire_all()
    assert db.session.get(Subscriber, s.id).language == "ru"
