"""The staff lists: filters, sorting and keyset pages, kept in the URL."""
from __future__ import annotations

import re
from decimal import Decimal

from portal.billing import accounts as acc
from portal.billing import ledger
from portal.extensions import db
from portal.models import SyncState
from tests.builders import gen_account, gen_agent, gen_contract, gen_staff, gen_subscriber
from tests.helpers import login

HX = {"HX-Request": "true"}


def logins(html: str) -> list[str]:
    return re.findall(r'<td><a href="/accounts/\d+">([^<]+)</a></td>', html)


def contracts(html: str) -> list[str]:
    return re.findall(r'<td><a href="/contracts/\d+">([^<]+)</a></td>\s*<td><a href="/subscribers', html)


def test_accounts_filter_by_status_agent_and_sync_state(app, client):
    """Can I see only blocked accounts of one agent, or only those whose platform sync is dead?"""
    with app.app_context():
        gen_staff("op", role="viewer")
        radius = gen_agent(kind="radius", name="RADIUS")
        other = gen_agent(name="Другой")
        a1 = gen_account(agent=radius, login="blocked-radius")
        acc.block(a1, actor="t")
        a2 = gen_account(agent=other, login="blocked-other")
        acc.block(a2, actor="t")
        gen_account(agent=radius, login="active-radius")
        dead = gen_account(agent=other, login="dead-sync")
        db.session.add(SyncState(account_id=dead.id, platform="webhook", state="dead", last_error="HTTP 500"))
        db.session.commit()
        rid = radius.id
    login(client, "op")
    page = client.get("/accounts").get_data(as_text=True)
    assert set(logins(page)) == {"blocked-radius", "blocked-other", "active-radius", "dead-sync"}
    rows = client.get(f"/accounts?status=blocked&agent={rid}", headers=HX).get_data(as_text=True)
    assert logins(rows) == ["blocked-radius"] and "<html" not in rows
    assert logins(client.get("/accounts?sync=dead", headers=HX).get_data(as_text=True)) == ["dead-sync"]
    # the filter survives a reload: the page shows it selected
    reloaded = client.get(f"/accounts?status=blocked&agent={rid}").get_data(as_text=True)
    assert logins(reloaded) == ["blocked-radius"] and '<option value="blocked" selected>' in reloaded


def test_sort_by_balance_both_ways_and_page_through(app, client):
    """Sorting contracts by balance puts the biggest debt first, and "Show more" continues the order."""
    with app.app_context():
        gen_staff("op", role="viewer")
        numbers = {}
        for i in range(55):
            c = gen_contract(number=f"N-{i:03d}")
            # balances -27..27 with repeats, so ties must be broken by id across the page boundary
            ledger.post(c.id, "correction", Decimal(i % 28 - 14 or 1), actor="t", comment="x")
            numbers[c.number] = Decimal(i % 28 - 14 or 1)
        db.session.commit()
    login(client, "op")
    first = client.get("/contracts?sort=balance").get_data(as_text=True)
    shown = contracts(first)
    assert len(shown) == 50
    more = re.search(r'hx-get="([^"]+after=[^"]+)"', first).group(1).replace("&amp;", "&")
    assert "sort=balance" in more
    rest = contracts(client.get(more, headers=HX).get_data(as_text=True))
    everything = shown + rest
    assert sorted(everything) == sorted(numbers)  # each once
    balances = [numbers[n] for n in everything]
    assert balances == sorted(balances)
    down = contracts(client.get("/contracts?sort=-balance", headers=HX).get_data(as_text=True))
    assert [numbers[n] for n in down] == sorted(numbers.values(), reverse=True)[:50]


def test_debtors_filter_and_header_shows_the_sort(app, client):
    """Filtering contracts to negative balances shows only debtors; the sorted column is marked."""
    with app.app_context():
        gen_staff("op", role="viewer")
        c1 = gen_contract(number="DEBT-1")
        ledger.post(c1.id, "correction", Decimal("-10"), actor="t", comment="x")
        gen_contract(number="ZERO-1")
        db.session.commit()
    login(client, "op")
    rows = client.get("/contracts?debt=negative&sort=-balance", headers=HX).get_data(as_text=True)
    assert contracts(rows) == ["DEBT-1"]
    # the HTMX answer also refreshes the header (out of band) so the arrow follows the sort
    assert 'hx-swap-oob="true"' in rows and re.search(r'class="sorted desc"[^>]*>[^<]*<', rows)


def test_do_not_block_filter_lists_and_totals_only_those_contracts(app, client):
    """H3: the "do not block" filter (read off a partial index on PostgreSQL) shows the marked
    contracts only, "no" the others, and its debt totals count only the marked debtors."""
    with app.app_context():
        gen_staff("op", role="viewer")
        for number, hold, debt in (("H-1", True, "-12.50"), ("H-2", True, None), ("N-1", False, "-40")):
            c = gen_contract(number=number, do_not_block=hold)
            if debt:
                ledger.post(c.id, "correction", Decimal(debt), actor="t", comment="x")
        db.session.commit()
    login(client, "op")
    assert contracts(client.get("/contracts?do_not_block=1&sort=number", headers=HX).get_data(as_text=True)) == \
        ["H-1", "H-2"]
    assert contracts(client.get("/contracts?do_not_block=0&sort=number", headers=HX).get_data(as_text=True)) == \
        ["N-1"]
    totals = client.get("/contracts?do_not_block=1&totals=1&lang=en").get_data(as_text=True)
    assert "Debtors: <b>1</b>" in totals and "12.50" in totals and "40.00" not in totals


def test_payments_list_and_search_by_payment_id(app, client):
    """Can I find a payment by the id the payment system gave it?"""
    with app.app_context():
        gen_staff("op", role="viewer")
        c = gen_contract(number="PAY-1")
        ledger.payment(c.id, "150.00", actor="t", external_id="SBP-777")
        ledger.payment(c.id, "20.00", actor="t", external_id="CASH-1")
        db.session.commit()
    login(client, "op")
    rows = client.get("/payments?q=sbp-7", headers=HX).get_data(as_text=True)
    assert "SBP-777" in rows and "CASH-1" not in rows and "150,00" in rows


def test_audit_log_lists_staff_actions_newest_first(app, client):
    """Does the audit log show who did what, newest first, and filter by object?"""
    with app.app_context():
        gen_staff("op", role="viewer")
        a = gen_account(login="audited")
        acc.block(a, actor="staff:boss")
        db.session.commit()
    login(client, "op")
    page = client.get("/audit?object=account").get_data(as_text=True)
    actions = re.findall(r'data-action="([a-z_.]+)"', page)
    assert actions[0] == "account.block" and 'title="staff:boss"' in page
    assert "subscriber.create" not in actions


def test_bad_cursor_or_sort_does_not_break_the_list(app, client):
    """A hand-edited link with a junk cursor or sort still shows the list."""
    with app.app_context():
        gen_staff("op", role="viewer")
        gen_subscriber(full_name="Кто-то")
    login(client, "op")
    r = client.get("/subscribers?sort=password&after=xx|yy")
    assert r.status_code == 200 and "Кто-то" in r.get_data(as_text=True)


# -- bounded pages of a searched list (portal.listing.narrowed_page) -------------------------------

def names(html: str) -> list[str]:
    return re.findall(r'<td><a href="/subscribers/\d+">([^<]+)</a></td>', html)


def read_all(client, url: str) -> tuple[list[str], list[str]]:
    """Every row a list shows for ``url``, following "Show more"; and each answer's HTML."""
    seen, answers = [], []
    while url:
        html = client.get(url, headers=HX).get_data(as_text=True)
        answers.append(html)
        seen += names(html)
        more = re.search(r'<tr class="more">.*?hx-get="([^"]+)"', html, re.S)
        url = more.group(1).replace("&amp;", "&") if more else None
    return seen, answers


def _clustered(app):
    """20 people before the matches in name order, 6 matches (a cluster), 20 after; by id the
    same groups follow each other, so the matches sit far from either end in both orders."""
    with app.app_context():
        gen_staff("op", role="viewer")
        for i in range(20):
            gen_subscriber(full_name=f"Абрамов Иван {i:02d}")
        for i in range(6):
            gen_subscriber(full_name=f"Кузнецов Пётр {i:02d}")
        for i in range(20):
            gen_subscriber(full_name=f"Яковлев Олег {i:02d}")
        return db.engine.dialect.name


def test_a_search_sorted_by_name_lists_every_match_in_name_order(app, client, monkeypatch):
    """When the walk over the next rows of the name order finds too few matches, are the few
    matches found by index still listed in name order, all of them, a page at a time?"""
    from portal import listing
    from portal.admin import lists

    _clustered(app)
    monkeypatch.setattr(listing, "WALK_ROWS", 5)  # the walk passes only the first five «Абрамов»
    monkeypatch.setattr(listing, "SET_ROWS", 10)
    monkeypatch.setattr(lists, "PAGE_SIZE", 4)
    login(client, "op")
    expected = [f"Кузнецов Пётр {i:02d}" for i in range(6)]
    client.get("/subscribers?lang=en")
    got, answers = read_all(client, "/subscribers?q=кузнецов&sort=name")
    assert got == expected and len(answers) == 2
    got, _ = read_all(client, "/subscribers?q=кузнецов&sort=-name")
    assert got == expected[::-1]
    assert all("newest first" not in a for a in answers)


def test_too_many_far_matches_fall_back_to_newest_first_and_say_so(app, client, monkeypatch):
    """With more matches than can be sorted at once and none near the start of the name order,
    does PostgreSQL list them newest first, say so, and keep that order on "Show more"?"""
    from portal import listing
    from portal.admin import lists

    dialect = _clustered(app)
    monkeypatch.setattr(listing, "WALK_ROWS", 5)
    monkeypatch.setattr(listing, "SET_ROWS", 3)  # six matches are "too many"
    monkeypatch.setattr(lists, "PAGE_SIZE", 4)
    login(client, "op")
    client.get("/subscribers?lang=en")
    got, answers = read_all(client, "/subscribers?q=кузнецов&sort=name")
    by_name = [f"Кузнецов Пётр {i:02d}" for i in range(6)]
    if dialect == "postgresql":
        assert got == by_name[::-1]  # newest (highest id) first
        assert "newest first" in answers[0] and "newest first" not in answers[1]
        assert "sort=-created" in answers[0]  # the next page and the header follow the id order
    else:  # SQLite walks the whole name order: no budget to keep at its sizes
        assert got == by_name and "newest first" not in answers[0]


def test_many_matches_spread_by_id_are_listed_newest_first_without_the_index_probe(app, client, monkeypatch):
    """L1: when the name order's first rows hold no match but the newest rows hold many (a
    patronymic spread over the table), does PostgreSQL answer newest first, saying so, and
    without first gathering the matches by index only to find them too many to sort?"""
    from sqlalchemy import event

    from portal import listing
    from portal.admin import lists

    with app.app_context():
        gen_staff("op", role="viewer")
        for i in range(10):
            gen_subscriber(full_name=f"Абрамов Иван {i:02d}")
        for i in range(12):  # by id: a match every other row
            gen_subscriber(full_name=f"Яковлев Олег {i:02d}")
            gen_subscriber(full_name=f"Кузнецов Пётр {i:02d}")
        dialect = db.engine.dialect.name
    monkeypatch.setattr(listing, "WALK_ROWS", 5)  # the name walk passes five «Абрамов» only
    monkeypatch.setattr(listing, "SET_ROWS", 3)
    monkeypatch.setattr(listing, "_table_rows", lambda table: 1_000_000)  # (as if at 1M rows)
    monkeypatch.setattr(lists, "PAGE_SIZE", 4)
    login(client, "op")
    client.get("/subscribers?lang=en")
    statements = []
    with app.app_context():
        listen = (db.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
        event.listen(*listen)
        try:
            got, answers = read_all(client, "/subscribers?q=кузнецов&sort=name")
        finally:
            event.remove(*listen)
    by_name = [f"Кузнецов Пётр {i:02d}" for i in range(12)]
    if dialect == "postgresql":
        assert got == by_name[::-1] and "newest first" in answers[0]
        assert not [s for s in statements if "MATERIALIZED" in s]  # (no index probe of all matches)
    else:
        assert got == by_name


def test_a_long_walk_answers_in_parts_and_show_more_finds_the_rest(app, client, monkeypatch):
    """In id order with many far matches, is each answer a bounded walk whose "Show more" goes
    on from where it stopped, so that all the matches come, in order, once each?"""
    from portal import listing
    from portal.admin import lists

    dialect = _clustered(app)
    monkeypatch.setattr(listing, "WALK_ROWS", 5)
    monkeypatch.setattr(listing, "SET_ROWS", 3)
    monkeypatch.setattr(listing, "LONG_WALK_ROWS", 8)
    monkeypatch.setattr(lists, "PAGE_SIZE", 4)
    login(client, "op")
    client.get("/subscribers?lang=en")
    got, answers = read_all(client, "/subscribers?q=кузнецов&sort=created")
    assert got == [f"Кузнецов Пётр {i:02d}" for i in range(6)]
    if dialect == "postgresql":  # rows 1-8, 9-16 hold no match: two answers say "none yet"
        assert names(answers[0]) == [] and "No more matches among the next 8 rows yet" in answers[0]
        assert len(answers) >= 4


def test_sync_filter_pages_through_every_account_in_that_state_in_order(app, client, monkeypatch):
    """L1: walked in id order a range at a time (on PostgreSQL the accounts in a sync state are
    taken from the states' index, not probed one by one), does the sync filter still list
    every account in that state and no other, in the order asked, across "Show more"?"""
    from portal import listing
    from portal.admin import lists

    with app.app_context():
        gen_staff("op", role="viewer")
        agent = gen_agent(name="Платформа")
        retry = []
        for i in range(12):
            a = gen_account(agent=agent, login=f"acc-{i:02d}")
            state = "retry" if i % 3 == 0 else "ok"
            db.session.add(SyncState(account_id=a.id, platform="webhook", state=state))
            if state == "retry":
                retry.append(a.login)
        db.session.commit()
    monkeypatch.setattr(listing, "WALK_ROWS", 2)
    monkeypatch.setattr(listing, "SET_ROWS", 1)
    monkeypatch.setattr(listing, "LONG_WALK_ROWS", 4)
    monkeypatch.setattr(lists, "PAGE_SIZE", 2)
    login(client, "op")

    def every(url):
        seen = []
        while url:
            html = client.get(url, headers=HX).get_data(as_text=True)
            seen += logins(html)
            more = re.search(r'<tr class="more">.*?hx-get="([^"]+)"', html, re.S)
            url = more.group(1).replace("&amp;", "&") if more else None
        return seen

    assert every("/accounts?sync=retry&sort=created") == retry
    assert every("/accounts?sync=retry&sort=-created") == retry[::-1]
    assert sorted(every("/accounts?sync=retry&sort=login")) == retry  # (or newest first, saying so)
    assert every("/accounts?sync=ok&sort=created") == [f"acc-{i:02d}" for i in range(12) if i % 3]


def test_contracts_found_by_number_or_name_when_few_match(app, client, monkeypatch):
    """When only a few contracts match, found by index rather than by a walk, does a search
    still find a contract by its number and by its subscriber's name (ё = е), in the order
    picked, and total the debt of just those?"""
    from portal import listing

    with app.app_context():
        gen_staff("op", role="viewer")
        for i in range(12):
            gen_contract(number=f"K-{i:03d}")
        petr = gen_subscriber(full_name="Сидорчук Пётр")
        a = gen_contract(subscriber=petr, number="A-900")
        gen_contract(subscriber=petr, number="A-100")
        ledger.post(a.id, "correction", Decimal("-70.25"), actor="t", comment="x")
        db.session.commit()
    monkeypatch.setattr(listing, "WALK_ROWS", 2)  # the walk finds no page: step 2 answers
    login(client, "op")
    html = client.get("/contracts?q=сидорчук петр&sort=number", headers=HX).get_data(as_text=True)
    assert contracts(html) == ["A-100", "A-900"]
    html = client.get("/contracts?q=сидорчук петр&sort=-number", headers=HX).get_data(as_text=True)
    assert contracts(html) == ["A-900", "A-100"]
    assert contracts(client.get("/contracts?q=K-00", headers=HX).get_data(as_text=True)) == \
        [f"K-{i:03d}" for i in range(9, -1, -1)]  # newest first
    totals = client.get("/contracts?q=сидорчук петр&totals=1&lang=en").get_data(as_text=True)
    assert "Debtors: <b>1</b>" in totals and "70.25" in totals


def test_totals_of_many_rows_come_on_a_click_and_are_exact(app, client, monkeypatch):
    """Past the number of rows totalled at once, do the totals say so rather than guess, and
    does "Sum them" give the exact count and sum of everything the filter selects?"""
    from portal.admin import lists

    with app.app_context():
        gen_staff("op", role="viewer")
        for i in range(5):
            c = gen_contract(number=f"T-{i}")
            ledger.payment(c.id, f"{10 * (i + 1)}.50", actor="t", external_id=f"TOT-{i}")
        db.session.commit()
    monkeypatch.setattr(lists, "TOTALS_ROWS", 4)
    login(client, "op")
    totals = client.get("/payments?q=tot-&totals=1&lang=en").get_data(as_text=True)
    assert "More than 4 rows selected" in totals and "Payments:" not in totals
    button = re.search(r'hx-get="([^"]+)"', totals).group(1).replace("&amp;", "&")
    assert "exact=1" in button and "q=tot-" in button
    exact = client.get(button).get_data(as_text=True)
    assert "Payments: <b>5</b>" in exact and "152.50" in exact  # 10.50 + 20.50 + ... + 50.50
    monkeypatch.setattr(lists, "TOTALS_ROWS", 5)  # five rows: summed at once
    assert "Payments: <b>5</b>" in client.get("/payments?q=tot-&totals=1&lang=en").get_data(as_text=True)
