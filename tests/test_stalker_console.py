"""The Stalker console: staff refresh the snapshot, add Stalker accounts to billing, delete
them from Stalker, register STBs, import plans and channels, check the connection and send
raw requests; jobs run in the real worker against the emulator over HTTP."""
from __future__ import annotations

import re

from sqlalchemy import func, select

from portal.extensions import db
from portal.models import (
    Account,
    AuditEntry,
    CatalogService,
    StalkerChannel,
    StalkerSnapshotRow,
    StalkerStb,
    StalkerTvId,
    Subscriber,
    Tariff,
)
from portal.platforms.reconcile import reconcile_account
from portal.platforms.stalker import console
from tests.builders import gen_account, gen_agent, gen_tariff
from tests.helpers import HX, login, post
from tests.platform_fixtures import wait_for
from tests.stalker_fixtures import ADMIN, API_PASSWORD, row_id


def finished(client, html: str, timeout=30) -> str:
    """Follow a progress row until its job has finished; the final row's HTML."""
    m = re.search(r'hx-get="(/jobs/[^"]+/progress[^"]*)"', html)
    assert m, html
    url = m.group(1).replace("&amp;", "&")
    return wait_for(lambda: (h := client.get(url).get_data(as_text=True)) and 'data-state="queued"' not in h
                    and 'data-state="started"' not in h and h, timeout, "the job to finish")


def imported_plans(*external_ids):
    for ext in external_ids:
        console.import_tariff(row_id("tariffs", str(ext)), actor="test")
    db.session.commit()


def test_refresh_fills_the_tables_with_what_stalker_has(app, staff, stalker, processes):
    """Refresh all: do the five tables show Stalker's rows, with statuses as badges, arrays as
    lists, plans with nested packages, and when they were refreshed?"""
    processes.start("jobs.worker")
    client = staff
    html = post(client, "/stalker/refresh/all", {}, headers=HX).get_data(as_text=True)
    done = finished(client, html)
    assert 'data-state="finished"' in done and "accounts 5" in done
    page = client.get("/stalker/accounts").get_data(as_text=True)
    assert "tv_petrov" in page and "Петров Пётр" in page and "5 " in page
    # headers in words, the API field name kept as the header's title
    for column, title in (("account_number", "Account number"), ("stb_mac", "STB MAC"),
                          ("subscribed", "Optional packages"), ("tariff_plan", "Tariff plan"), ("online", "Online"),
                          ("status", "Status"), ("full_name", "Full name")):
        assert f'<th title="{column}" data-field="{column}">{title}</th>' in page
    assert "<th>full_name</th>" not in page and "0000-00-00" not in page
    orlov = page[page.index("tv_orlov"):]
    orlov = orlov[:orlov.index("</tr>")]
    assert "badge-disabled" in orlov and "pkg_sport<br>pkg_kino" in orlov
    tariffs = client.get("/stalker/tariffs").get_data(as_text=True)
    assert "Максимальный" in tariffs and '<ul class="nested">' in tariffs and "Кино" in tariffs
    for tab, text in (("stb", "00:1A:79:00:00:03"), ("channels", "Спорт 1 HD")):
        assert text in client.get(f"/stalker/{tab}").get_data(as_text=True)
    # the web process made no call: every call was the worker's, and is in the audit log
    calls = db.session.scalars(select(AuditEntry.summary).filter_by(action="platform.call")).all()
    assert len(calls) == 5 and all("200" in c for c in calls)
    assert API_PASSWORD not in str(db.session.scalars(select(AuditEntry.after)).all())


def test_a_failed_refresh_keeps_the_old_rows_and_says_why(staff, stalker):
    """When Stalker errs during a refresh, does the table keep its rows and show the error?"""
    console.refresh(("channels",), actor="test")
    stalker.fail("Database error", resource="itv")
    console.refresh(("channels",), actor="test")
    page = staff.get("/stalker/channels").get_data(as_text=True)
    assert "Первый канал" in page and "Database error" in page


def test_search_and_pages_of_the_accounts_table(staff, stalker):
    """With 120 accounts, does the table show 50, a "Show more" that brings the next ones,
    and a search that finds one by MAC?"""
    stalker.seed_accounts(115)
    console.refresh(("accounts",), actor="test")
    page = staff.get("/stalker/accounts").get_data(as_text=True)
    assert page.count("<tr data-row=") == 50
    more = re.search(r'hx-get="([^"]+after=\d+[^"]*)"', page).group(1).replace("&amp;", "&")
    second = staff.get(more, headers=HX).get_data(as_text=True)
    assert second.count("<tr data-row=") == 50 and "<html" not in second and "tv_petrov" not in second
    found = staff.get("/stalker/accounts?q=00:2B:00:01:86:A5", headers=HX).get_data(as_text=True)
    assert found.count("<tr data-row=") == 1 and "bench100005" in found


def test_plus_adds_a_subscriber_contract_and_account_with_the_stalker_number(staff, stalker, tv_agent):
    """"+" on tv_petrov: is there a subscriber card, a contract and an active TV account with
    TV ID 501, the STB, and is the row then linked to it?"""
    console.refresh(actor="test")
    imported_plans(9001)
    r = post(staff, f"/stalker/accounts/{row_id('accounts', '501')}/add", {}, headers=HX)
    assert r.status_code == 200 and "tv_petrov" in r.get_data(as_text=True)
    account = db.session.scalar(select(Account).filter_by(login="tv_petrov"))
    assert (account.status, account.tariff_id, account.agent_id) == ("active", 9001, tv_agent.id)
    assert account.contract.subscriber.full_name == "Петров Пётр"
    assert account.contract.subscriber.phones == ["+7 900 111-22-33"]
    assert db.session.get(StalkerTvId, account.id).tv_id == 501
    assert db.session.scalar(select(StalkerStb.mac).filter_by(account_id=account.id)) == "00:1A:79:00:00:01"
    page = staff.get("/stalker/accounts").get_data(as_text=True)
    assert f'href="/accounts/{account.id}"' in page
    # billing's sync finds the same user: nothing created twice
    assert reconcile_account("stalker", account.id) == "ok"
    assert [u["login"] for u in stalker.users.values()].count("tv_petrov") == 1
    # a blocked Stalker account comes in blocked by a manager
    imported_plans(9003)
    post(staff, f"/stalker/accounts/{row_id('accounts', '503')}/add", {}, headers=HX)
    orlov = db.session.scalar(select(Account).filter_by(login="tv_orlov"))
    assert (orlov.status, orlov.reasons) == ("blocked", ["manager"])


def test_plus_writes_billings_tv_id_back_when_stalkers_number_is_not_usable(staff, stalker, tv_agent):
    """tv_guest has the account number «guest-1»: does billing give it a TV ID and write it
    back to Stalker?"""
    console.refresh(actor="test")
    imported_plans(9002)
    post(staff, f"/stalker/accounts/{row_id('accounts', 'guest-1')}/add", {}, headers=HX)
    account = db.session.scalar(select(Account).filter_by(login="tv_guest"))
    tv_id = db.session.get(StalkerTvId, account.id).tv_id
    assert str(tv_id).isdigit()
    assert reconcile_account("stalker", account.id) == "ok"
    assert stalker.find(login="tv_guest")["ls"] == str(tv_id)


def test_plus_on_a_login_billing_has_adds_the_tv_account_to_that_contract(staff, stalker, tv_agent):
    """A billing internet account is called tv_sidorova: does "+" add the TV account to the
    same contract, keeping the Stalker login in Stalker?"""
    internet = gen_account(login="tv_sidorova", agent=gen_agent(kind="radius"))
    console.refresh(actor="test")
    imported_plans(9002)
    post(staff, f"/stalker/accounts/{row_id('accounts', '502')}/add", {}, headers=HX)
    tv = db.session.scalar(select(Account).filter_by(login="tv_sidorova-tv"))
    assert tv.contract_id == internet.contract_id and tv.agent.platform == "stalker"
    assert db.session.scalar(select(func.count()).select_from(Subscriber)) == 1
    assert reconcile_account("stalker", tv.id) == "ok"
    assert stalker.find(ls="502")["login"] == "tv_sidorova"


def test_plus_without_a_billing_tariff_says_import_it_and_creates_nothing(staff, stalker, tv_agent):
    """The plan 9003 is not in billing: is the row flagged and "+" refused with that reason?"""
    console.refresh(actor="test")
    page = staff.get("/stalker/accounts").get_data(as_text=True)
    assert page.count(">import tariff</a>") == 5
    r = post(staff, f"/stalker/accounts/{row_id('accounts', '503')}/add", {}, headers=HX)
    assert r.status_code == 422 and "tariff_plan" in r.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(Account)) == 0
    assert db.session.scalar(select(func.count()).select_from(Subscriber)) == 0


def test_delete_removes_the_account_from_stalker_only(staff, stalker, tv_agent, processes):
    """"delete" on tv_hotel: is it gone from Stalker and from the table, billing unchanged?"""
    processes.start("jobs.worker")
    console.refresh(actor="test")
    before = db.session.scalar(select(func.count()).select_from(Account))
    html = post(staff, f"/stalker/accounts/{row_id('accounts', '7777')}/delete", {}, headers=HX).get_data(as_text=True)
    assert 'data-state="finished"' in finished(staff, html)
    assert stalker.find(login="tv_hotel") is None
    assert "tv_hotel" not in staff.get("/stalker/accounts").get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(Account)) == before
    assert db.session.scalar(select(AuditEntry).filter_by(action="stalker.account_delete")).actor == f"staff:{ADMIN}"


def test_register_an_stb_and_it_reaches_stalker(staff, stalker, tv_agent):
    """Staff register an STB (MAC without colons) on a TV account: does Stalker get the MAC;
    and does a bad MAC name the field?"""
    console.refresh(("tariffs",), actor="test")
    imported_plans(9001)
    account = gen_account(agent=tv_agent, tariff=db.session.get(Tariff, 9001), login="kino_fan")
    r = post(staff, "/stalker/stb/register", {"account": "kino_fan", "mac": "001a79cafe01", "serial": "SN77"},
             headers=HX)
    assert r.status_code == 200 and "00:1A:79:CA:FE:01" in r.get_data(as_text=True)
    assert reconcile_account("stalker", account.id) == "ok"
    assert stalker.find(login="kino_fan")["mac"] == "00:1A:79:CA:FE:01"
    bad = post(staff, "/stalker/stb/register", {"account": "kino_fan", "mac": "00:1A:79", "serial": ""}, headers=HX)
    assert bad.status_code == 422 and 'data-field="mac"' in bad.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(StalkerStb)) == 1


def test_import_channels_replaces_the_list_and_a_failure_keeps_the_old_one(staff, stalker, processes):
    """"Import channels": does billing get Stalker's twelve channels, and when Stalker errs,
    does the old list stay as it was?"""
    db.session.add(StalkerChannel(id=500, name="Старый канал", number=1))
    db.session.commit()
    processes.start("jobs.worker")
    stalker.fail("Database error", resource="itv")
    failed = finished(staff, post(staff, "/stalker/channels/import", {}, headers=HX).get_data(as_text=True))
    assert 'data-state="failed"' in failed and "Database error" in failed
    assert [c.name for c in db.session.scalars(select(StalkerChannel))] == ["Старый канал"]
    stalker.heal()
    done = finished(staff, post(staff, "/stalker/channels/import", {}, headers=HX).get_data(as_text=True))
    assert 'data-state="finished"' in done and "12" in done
    names = [c.name for c in db.session.scalars(select(StalkerChannel).order_by(StalkerChannel.id))]
    assert len(names) == 12 and names[0] == "Первый канал" and "Старый канал" not in names


def test_import_a_plan_as_a_tariff_and_refuse_an_unrelated_one(staff, stalker):
    """Importing «Максимальный» makes tariff 9003 offering its two optional packages as Stalker
    services (the mandatory base package comes with the plan); re-import updates it; a plan
    whose id an unrelated tariff holds is refused."""
    console.refresh(("tariffs",), actor="test")
    r = post(staff, f"/stalker/tariffs/{row_id('tariffs', '9003')}/import", {}, headers=HX)
    assert r.status_code == 200
    tariff = db.session.get(Tariff, 9003)
    assert tariff.name == "Максимальный"
    assert sorted((s.external_id, s.platform, s.price) for s in tariff.services) == [
        ("pkg_kino", "stalker", 199), ("pkg_sport", "stalker", 149)]
    stalker.plans[3]["name"] = "Максимальный+"
    console.refresh(("tariffs",), actor="test")
    assert "re-sync" in staff.get("/stalker/tariffs").get_data(as_text=True)
    post(staff, f"/stalker/tariffs/{row_id('tariffs', '9003')}/import", {}, headers=HX)
    db.session.expire_all()
    assert db.session.get(Tariff, 9003).name == "Максимальный+"
    assert db.session.scalar(select(func.count()).select_from(CatalogService).filter_by(platform="stalker")) == 2
    # an unrelated tariff holding 9001
    from portal.billing import directory
    directory.save_tariff({"name": "Интернет 100", "monthly_fee": "500"}, actor="test",
                          tariff=Tariff(id=9001, name="", kind="internet", is_multi=False))
    db.session.commit()
    r = post(staff, f"/stalker/tariffs/{row_id('tariffs', '9001')}/import", {}, headers=HX)
    assert r.status_code == 422 and "unrelated" in r.get_data(as_text=True)
    assert db.session.get(Tariff, 9001).name == "Интернет 100"
    # a new tariff made afterwards still gets a fresh id (PostgreSQL sequences)
    assert gen_tariff().id not in (9001, 9003)


def test_the_connection_check_tells_reachable_credentials_and_api(app, staff, stalker, processes):
    """"Check the connection": all good; then the API switched off; then Stalker down."""
    processes.start("jobs.worker")

    def check() -> str:
        html = post(staff, "/stalker/check", {}, headers=HX).get_data(as_text=True)
        url = re.search(r'hx-get="([^"]+)"', html).group(1)
        return wait_for(lambda: (h := staff.get(url).get_data(as_text=True)) and 'data-state="running"' not in h
                        and h, 30, "the check")

    ok = check()
    assert "credentials accepted" in ok and "API switched on" in ok and "3 tariff plans" in ok
    stalker.api_enabled = False
    off = check()
    assert "API switched off" in off and "API not enabled" in off
    stalker.api_enabled = True
    stalker.api_password = "changed"
    assert "credentials refused" in check()
    stalker.down()
    assert "not reachable" in check()


def test_the_raw_console_for_admins(staff, stalker, processes):
    """An admin sends GET accounts/501 and sees the pretty-printed answer; a broadcast PUT
    without an identifier is refused before any call; a manager may not use the console."""
    processes.start("jobs.worker")

    def send(data) -> str:
        html = post(staff, "/stalker/console", data, headers=HX).get_data(as_text=True)
        url = re.search(r'hx-get="([^"]+)"', html).group(1)
        return wait_for(lambda: (h := staff.get(url).get_data(as_text=True)) and "spinner" not in h and h, 30,
                        "the answer")

    answer = send({"method": "GET", "resource": "accounts/501", "params": ""})
    assert '&#34;login&#34;: &#34;tv_petrov&#34;' in answer and "\n" in answer
    refused = send({"method": "PUT", "resource": "stb_msg", "params": "msg=hello"})
    assert "identifier is required" in refused and not [r for r in stalker.requests if r["resource"] == "stb_msg"]
    staff.post("/logout", data={"csrf_token": re.search(r'"X-CSRFToken": "([^"]+)"',
                                                         staff.get("/").get_data(as_text=True)).group(1)})
    login(staff, "mgr")
    assert staff.get("/stalker/console").status_code == 403
    assert post(staff, "/stalker/console", {"method": "GET", "resource": "accounts"}).status_code == 403


def test_a_viewer_reads_but_cannot_act(staff, stalker, tv_agent):
    """A viewer sees the tables, no action buttons, and is refused the actions."""
    console.refresh(actor="test")
    staff.post("/logout", data={"csrf_token": re.search(r'"X-CSRFToken": "([^"]+)"',
                                                         staff.get("/").get_data(as_text=True)).group(1)})
    login(staff, "view")
    page = staff.get("/stalker/accounts").get_data(as_text=True)
    assert "tv_petrov" in page and ">+</button>" not in page and 'hx-post="/stalker/' not in page
    assert post(staff, f"/stalker/accounts/{row_id('accounts', '501')}/add", {}).status_code == 403
    assert staff.get(f"/stalker/accounts/{row_id('accounts', '501')}/add", headers=HX).status_code == 403
    assert post(staff, "/stalker/refresh/all", {}).status_code == 403
    assert db.session.scalar(select(func.count()).select_from(Account)) == 0


def loginless(stalker):
    """Stalker users without a login (STBs that log in by MAC), as Stalker's admin makes them."""
    stalker.add_user("", "601", "9001", 1, "00:1A:79:00:00:61", full_name="Кухня")
    stalker.add_user("", "hall-2", "9001", 0, "00:1A:79:00:00:62")
    stalker.add_user("", "lobby", "9001", 1, "")
    stalker.add_user("", "", "9001", 1, "")


def test_plus_names_an_account_without_a_login_after_its_number(staff, stalker, tv_agent):
    """A Stalker user without a login, account number 601: does the row say it will become
    tv601, does "+" make the billing account tv601 with TV ID 601 and the STB, and does the
    sync give that same Stalker user the login (no second user)?"""
    loginless(stalker)
    console.refresh(actor="test")
    imported_plans(9001)
    page = staff.get("/stalker/accounts").get_data(as_text=True)
    row = page[page.index(f'data-row="{row_id("accounts", "601")}"'):]
    row = row[:row.index("</tr>")]
    assert "as tv601" in row and "Add to billing as tv601" in row
    assert "How “+” adds a Stalker account to billing" in page
    r = post(staff, f"/stalker/accounts/{row_id('accounts', '601')}/add", {}, headers=HX)
    assert r.status_code == 200 and "tv601" in r.get_data(as_text=True)
    account = db.session.scalar(select(Account).filter_by(login="tv601"))
    assert account.status == "active" and account.contract.subscriber.full_name == "Кухня"
    assert db.session.get(StalkerTvId, account.id).tv_id == 601
    assert db.session.scalar(select(StalkerStb.mac).filter_by(account_id=account.id)) == "00:1A:79:00:00:61"
    page = staff.get("/stalker/accounts").get_data(as_text=True)
    row = page[page.index(f'data-row="{row_id("accounts", "601")}"'):]
    assert f'href="/accounts/{account.id}"' in row[:row.index("</tr>")]
    users = len(stalker.users)
    assert reconcile_account("stalker", account.id) == "ok"
    assert stalker.find(mac="00:1A:79:00:00:61")["login"] == "tv601" and len(stalker.users) == users
    # "+" again adds nothing: the row is billing's now, and the answer says so
    again = post(staff, f"/stalker/accounts/{row_id('accounts', '601')}/add", {}, headers=HX)
    assert again.status_code == 200 and "tv601 is in billing already" in again.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(Account).filter_by(login="tv601")) == 1


def test_plus_without_a_login_and_an_unusable_number_goes_by_the_stb(staff, stalker, tv_agent):
    """No login, account number «hall-2», a MAC; billing has a tvhall-2 already: is the new
    account tvhall-2-2, blocked as in Stalker, with a TV ID of billing's that the sync writes
    to the same Stalker user (found by its STB)?"""
    loginless(stalker)
    gen_account(login="tvhall-2", agent=gen_agent(kind="radius"))
    console.refresh(actor="test")
    imported_plans(9001)
    assert post(staff, f"/stalker/accounts/{row_id('accounts', 'hall-2')}/add", {}, headers=HX).status_code == 200
    account = db.session.scalar(select(Account).filter_by(login="tvhall-2-2"))
    assert (account.status, account.reasons) == ("blocked", ["manager"])
    tv_id = db.session.get(StalkerTvId, account.id).tv_id
    users = len(stalker.users)
    assert reconcile_account("stalker", account.id) == "ok"
    user = stalker.find(mac="00:1A:79:00:00:62")
    assert (user["login"], user["ls"], user["status"]) == ("tvhall-2-2", str(tv_id), 0) and len(stalker.users) == users


def test_plus_links_a_loginless_row_by_number_and_refuses_what_it_cannot_find_again(staff, stalker, tv_agent):
    """A login-less row whose number is a billing account's TV ID shows that account; rows
    with no number, or no MAC and a number that cannot be a TV ID, are refused with the reason
    and nothing is created."""
    loginless(stalker)
    console.refresh(actor="test")
    imported_plans(9001)
    mine = gen_account(agent=tv_agent, tariff=db.session.get(Tariff, 9001), login="kitchen")
    db.session.add(StalkerTvId(account_id=mine.id, tv_id=601))
    db.session.commit()
    page = staff.get("/stalker/accounts").get_data(as_text=True)
    row = page[page.index(f'data-row="{row_id("accounts", "601")}"'):]
    assert f'href="/accounts/{mine.id}"' in row[:row.index("</tr>")]
    before = db.session.scalar(select(func.count()).select_from(Account))
    lobby = post(staff, f"/stalker/accounts/{row_id('accounts', 'lobby')}/add", {}, headers=HX)
    assert lobby.status_code == 422 and "account_number" in lobby.get_data(as_text=True)
    assert "no login, no MAC" in lobby.get_data(as_text=True)
    nothing = db.session.scalar(select(StalkerSnapshotRow.id).filter_by(kind="accounts", key=""))
    bare = post(staff, f"/stalker/accounts/{nothing}/add", {}, headers=HX)
    assert bare.status_code == 422 and "no login and no account number" in bare.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(Account)) == before
    assert db.session.scalar(select(func.count()).select_from(Subscriber)) == 1


def test_stbs_registered_in_billing_are_listed_and_removed_after_a_confirmation(staff, stalker, tv_agent):
    """The STB tab lists billing's STBs with their accounts; "remove" asks first, takes the STB
    off billing, and the sync takes the MAC off the Stalker account; a viewer cannot remove."""
    console.refresh(("tariffs",), actor="test")
    imported_plans(9001)
    account = gen_account(agent=tv_agent, tariff=db.session.get(Tariff, 9001), login="kino_fan")
    for mac in ("00:1A:79:CA:FE:01", "00:1A:79:CA:FE:02"):
        post(staff, "/stalker/stb/register", {"account": "kino_fan", "mac": mac, "serial": "SN-" + mac[-2:]},
             headers=HX)
    assert reconcile_account("stalker", account.id) == "ok"
    assert stalker.find(login="kino_fan")["mac"] == "00:1A:79:CA:FE:01"
    page = staff.get("/stalker/stb").get_data(as_text=True)
    assert "STBs registered in billing" in page and page.count("<tr data-stb=") == 2
    first = db.session.scalar(select(StalkerStb).filter_by(mac="00:1A:79:CA:FE:01"))
    row = page[page.index(f'data-stb="{first.id}"'):]
    row = row[:row.index("</tr>")]
    assert "SN-01" in row and f'href="/accounts/{account.id}"' in row and "kino_fan" in row
    assert 'hx-confirm="Remove the STB 00:1A:79:CA:FE:01 from account kino_fan?' in row
    found = staff.get("/stalker/stb/billing?stb_q=fe:02", headers=HX).get_data(as_text=True)
    assert found.count("<tr data-stb=") == 1 and "SN-02" in found

    r = post(staff, f"/stalker/stb/{first.id}/remove", {}, headers=HX)
    assert r.status_code == 200 and "removed" in r.headers["HX-Trigger"]
    assert [s.mac for s in db.session.scalars(select(StalkerStb))] == ["00:1A:79:CA:FE:02"]
    assert db.session.scalar(select(AuditEntry).filter_by(action="stalker.stb_remove")).actor == f"staff:{ADMIN}"
    assert reconcile_account("stalker", account.id) == "ok"
    assert stalker.find(login="kino_fan")["mac"] == "00:1A:79:CA:FE:02"
    again = post(staff, f"/stalker/stb/{first.id}/remove", {}, headers=HX)
    assert again.status_code == 422 and "no such STB" in again.get_data(as_text=True)

    staff.post("/logout", data={"csrf_token": re.search(r'"X-CSRFToken": "([^"]+)"',
                                                         staff.get("/").get_data(as_text=True)).group(1)})
    login(staff, "view")
    page = staff.get("/stalker/stb").get_data(as_text=True)
    assert "00:1A:79:CA:FE:02" in page and "remove-stb" not in page
    second = db.session.scalar(select(StalkerStb.id))
    assert post(staff, f"/stalker/stb/{second}/remove", {}).status_code == 403
    assert db.session.scalar(select(func.count()).select_from(StalkerStb)) == 1


def test_with_redis_down_an_action_says_so_instead_of_failing(app, staff, stalker):
    """If Redis is down when staff press "check" or "refresh", does the page say so (no 500),
    and does the row stop instead of polling for a job that was never queued?"""
    from tests.platform_fixtures import redis_down

    with redis_down(app):
        check = post(staff, "/stalker/check", {}, headers=HX)
        refresh = post(staff, "/stalker/refresh/accounts", {}, headers=HX)
    for answer in (check, refresh):
        html = answer.get_data(as_text=True)
        assert answer.status_code == 200 and "Redis" in html and "hx-get" not in html
