"""The staff list of subscribers: search as you type and page by page, swapping only the rows."""
from __future__ import annotations

import re

from tests.builders import gen_staff, gen_subscriber
from tests.helpers import login


def names(html: str) -> list[str]:
    return re.findall(r'<td class="num">\d+</td><td><a href="/subscribers/\d+">([^<]+)</a></td>', html)


def test_search_swaps_only_the_rows_and_keeps_the_filter_in_the_url(app, client):
    """Typing «петр» shows only matching subscribers; the HTMX answer is rows, not a page."""
    with app.app_context():
        gen_staff("op", role="viewer")
        gen_subscriber(full_name="Петров Пётр")
        gen_subscriber(full_name="Сидорова Анна")
    login(client, "op")
    full = client.get("/subscribers").get_data(as_text=True)
    assert "<html" in full and names(full) == ["Петров Пётр", "Сидорова Анна"]
    rows = client.get("/subscribers?q=петр", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "<html" not in rows and names(rows) == ["Петров Пётр"]
    # the same URL without HTMX (a reload or a shared link) shows the same view as a page
    reloaded = client.get("/subscribers?q=петр").get_data(as_text=True)
    assert "<html" in reloaded and names(reloaded) == ["Петров Пётр"] and 'value="петр"' in reloaded


def test_show_more_continues_after_the_last_row(app, client):
    """With more subscribers than a page, «Show more» brings the next ones, none twice."""
    with app.app_context():
        gen_staff("op2", role="viewer")
        for i in range(55):
            gen_subscriber(full_name=f"Абонент {i:02d}")
    login(client, "op2")
    first = client.get("/subscribers?lang=ru").get_data(as_text=True)
    assert len(names(first)) == 50
    more = re.search(r'hx-get="([^"]+after=[^"]+)"', first).group(1).replace("&amp;", "&")
    rest = client.get(more, headers={"HX-Request": "true"}).get_data(as_text=True)
    assert len(names(rest)) == 5 and not set(names(rest)) & set(names(first))
    assert "after=" not in rest  # the last page offers no more
