"""A local «Смотрёшка»: the operator API v2 + account-state v3 with the quirks of the notes
(section 1.14), and a "subscriber app" that buys or replaces subscriptions the way the real
app does, by calling the billing's upsale v3 endpoints. For tests and ``make run``.

    emu = SmotreshkaEmulator(catalog=[{"id": "101", "name": "Базовый"}]).start()
    emu.url                                   # the connection URL (no /v2)
    emu.accounts                              # id -> account (username, email, subscriptions...)
    emu.foreign["taken"] = "another provider" # a username another provider owns
    emu.deny_source()                         # 403 for everyone: our address is not allowlisted
    emu.fail("busy", status=500, times=2)     # the next two requests fail
    emu.fail("gone", path="/v2/subscriptions", method="GET")   # only that path (and method)
    emu.fail("busy", account=pid)             # only calls on one platform account
    emu.down(); emu.up()                      # refuse connections, then listen again
    emu.latency = 0.2                         # seconds added to every answer
    emu.app.configure(url="http://127.0.0.1:5000", login="ls", password="...")
    emu.app.buy(account_id, "102")            # ensure + commit on the billing; enables on success
    emu.app.replace(account_id, "101", "103")
    emu.admin_switch(account_id, "201", on=False)  # the operator's manager, in the platform's admin
    emu.app.switch_off(account_id, "201")           # the subscriber, in the app (no call to billing)

Quirks: usernames are global (another provider's name: 400 "Users exists and belongs to other
provider"; ours: ``created:false`` and the same id); the toggle answers the state after it, and
``{}`` for an unknown subscription id; ``DELETE`` archives and later calls on the account get
403 until the username is POSTed again; JSON and form bodies; ``valid`` as a boolean or a
string; the email must be lowercase; account-state is ordered by ``stateTimestamp``.

HTTP pages of the subscriber app (for trying it by hand in ``make run``): ``GET /app`` lists
the accounts and the catalog with buttons; ``POST /app/buy`` (accountId, offerId[, oldOfferId]).

Standalone: ``python -m portal.platforms.smotreshka.emulator --port 8097``.
"""
from __future__ import annotations

import argparse
import contextlib
import html
import json
import re
import secrets
import threading
import uuid
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import requests

from ..emulation import Answer, EmulatedServer

USERNAME_RE = re.compile(r"^[a-zA-Z0-9_@.+\-/]{1,100}$")
DEMO_CATALOG = [
    {"id": "101", "name": "Смотрёшка «Лайт»", "channels": [{"image": "lite.png"}] * 3},
    {"id": "102", "name": "Смотрёшка «Оптимальный»", "channels": [{"image": "opt.png"}] * 5},
    {"id": "201", "name": "Кинопакет «Амедиатека»", "channels": [{"image": "amedia.png"}]},
    {"id": "202", "name": "Детский", "channels": [{"image": "kids.png"}] * 2},
    {"id": "203", "name": "Спорт", "channels": [{"image": "sport.png"}] * 2},
]


def _now() -> str:
    return datetime.now(UTC).astimezone().isoformat(sep=" ")


class SubscriberApp:
    """The platform's app: a purchase is an ensure and a commit on the billing's upsale v3."""

    def __init__(self, emulator: SmotreshkaEmulator):
        self.emulator = emulator
        self.url: str | None = None
        self.auth: tuple[str, str] | None = None
        self.log: list[dict] = []

    def configure(self, url: str, login: str | None = None, password: str | None = None) -> None:
        """``url``: the billing's base URL (the upsale endpoints are under /upsale/v3)."""
        self.url = url.rstrip("/")
        self.auth = (login, password or "") if login else None

    def _call(self, op: str, step: str, params: dict, body: dict) -> tuple[int, dict]:
        r = requests.post(f"{self.url}/upsale/v3/{op}/{step}", params=params, json=body, auth=self.auth, timeout=10)
        try:
            answer = r.json()
        except ValueError:
            answer = {"error": r.text[:200]}
        self.log.append({"op": op, "step": step, "params": params, "status": r.status_code, "answer": answer})
        return r.status_code, answer

    def buy(self, account_id: str, offer_id: str, *, old_offer_id: str | None = None, trial_days: int = 0,
            qs_transaction_id: str | None = None, commit: bool = True) -> dict:
        """Ensure, then (when ensured) commit; on ``operation_commited`` the platform switches the
        subscriptions itself, as the real one does. Returns the last answer with its status."""
        emu = self.emulator
        with emu._lock:
            account = emu.accounts[account_id]
            username = account["username"]
        op = "replace-subscription" if old_offer_id else "add-subscription"
        params = {"accountId": account_id, "accountLogin": username, "newOfferId": offer_id,
                  "qsTransactionId": qs_transaction_id or str(uuid.uuid4())}
        if old_offer_id:
            params["oldOfferId"] = old_offer_id
        if trial_days:
            params["trialDays"] = str(trial_days)
        body = {"upsaleRequestContext": {"newOfferName": emu.catalog_name(offer_id), "clientIp": "10.0.0.7",
                                         "deviceInfo": {"type": "smart_tv"}, "appInfo": {"version": "5.1"}}}
        status, answer = self._call(op, "ensure", params, body)
        if answer.get("result") != "operation_ensured" or not commit:
            return {"status": status, **answer}
        params["billingTransactionId"] = answer["billingTransactionId"]
        params["serviceStartTimestamp"] = datetime.now(UTC).astimezone().isoformat()
        status, answer = self._call(op, "commit", params, body)
        if answer.get("result") == "operation_commited":
            with emu._lock:
                subs = emu.accounts[account_id]["subscriptions"]
                if old_offer_id:
                    subs.discard(old_offer_id)
                subs.add(offer_id)
        return {"status": status, **answer}

    def replace(self, account_id: str, old_offer_id: str, new_offer_id: str, **kw) -> dict:
        return self.buy(account_id, new_offer_id, old_offer_id=old_offer_id, **kw)

    def switch_off(self, account_id: str, offer_id: str) -> None:
        """The subscriber switches a subscription off in the app: the platform alone changes."""
        self.emulator.admin_switch(account_id, offer_id, on=False, by="subscriber")


class SmotreshkaEmulator(EmulatedServer):
    thread_name = "smotreshka-emulator"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, catalog: list[dict] | None = None):
        super().__init__(host, port)
        self.catalog = [dict(c) for c in (catalog if catalog is not None else DEMO_CATALOG)]
        self.accounts: dict[str, dict] = {}
        self.foreign: dict[str, str] = {}  # usernames other providers own
        self.states: dict[str, dict] = {}  # account id -> the last account-state accepted
        self.requests: list[dict] = []     # method, path, status of every request
        self.admin_log: list[dict] = []    # changes made on the platform's side (admin_switch)
        self.app = SubscriberApp(self)
        self._denied = False

    @property
    def url(self) -> str:
        return self.base_url

    # -- control ------------------------------------------------------------------------------

    def deny_source(self, denied: bool = True) -> None:
        self._denied = denied

    def fail(self, message: str = "emulated failure", status: int = 500, times: int | None = None,
             **match) -> None:
        """As the base's, answering 500 unless told; ``match`` keys: path, method, account."""
        super().fail(message, status, times, **match)

    def heal(self) -> None:
        super().heal()
        self._denied = False

    def catalog_name(self, sid: str) -> str | None:
        return next((c["name"] for c in self.catalog if str(c["id"]) == str(sid)), None)

    def by_username(self, username: str) -> dict | None:
        with self._lock:
            return next((a for a in self.accounts.values() if a["username"] == username), None)

    def admin_switch(self, account_id: str, subscription_id: str, on: bool, by: str = "manager") -> None:
        """Switch a subscription on or off on the platform's side, as the operator's manager does
        in the platform's admin (or the subscriber in its apps); billing is not told."""
        sid = str(subscription_id)
        with self._lock:
            account = self.accounts[account_id]
            if sid not in {str(c["id"]) for c in self.catalog}:
                raise KeyError(f"no subscription {sid} in the catalog")
            (account["subscriptions"].add if on else account["subscriptions"].discard)(sid)
            account["updated"] = _now()
            self.admin_log.append({"account": account_id, "subscription": sid, "on": on, "by": by})

    def writes(self, account_id: str | None = None) -> list[dict]:
        """Requests that changed something (POST, DELETE), optionally on one account."""
        return [r for r in self.requests if r["method"] != "GET" and (account_id is None or account_id in r["path"])]

    # -- protocol -----------------------------------------------------------------------------

    def handle(self, method: str, target: str, headers, raw: bytes) -> Answer:
        parts = urlsplit(target)
        path, query = parts.path.rstrip("/") or "/", parse_qs(parts.query)
        if path == "/app" or path.startswith("/app/"):
            return Answer(200, self._app_page(method, path, raw), "text/html; charset=utf-8")
        status, answer = self._api(method, path, query, headers.get("Content-Type", ""), raw)
        with self._lock:
            self.requests.append({"method": method, "path": path, "status": status})
        return Answer(status, answer)

    def _body(self, ctype: str, raw: bytes) -> dict:
        if not raw:
            return {}
        if "json" in ctype or raw.lstrip()[:1] in (b"{", b"["):
            try:
                data = json.loads(raw)
                return data if isinstance(data, dict) else {}
            except ValueError:
                return {}
        return {k: v[-1] if len(v) == 1 else v for k, v in parse_qs(raw.decode()).items()}

    def _api(self, method, path, query, ctype, raw) -> tuple[int, object]:
        if self._denied:
            return 403, {"error": "Forbidden"}
        m = re.match(r"/(?:v2/accounts|accounts/v3)/([^/]+)", path)
        failure = self.take_failure(path=path, method=method, account=m.group(1) if m else None)
        if failure is not None:
            return failure.status, {"error": failure.message}
        with self._lock:
            body = self._body(ctype, raw)
            m = re.fullmatch(r"/accounts/v3/([^/]+)/account-state", path)
            if m and method == "POST":
                return self._account_state(m.group(1), body)
            if path == "/v2/subscriptions" and method == "GET":
                return 200, self.catalog
            if path == "/v2/accounts" and method == "GET":
                return self._list(query)
            if path == "/v2/accounts" and method == "POST":
                return self._create(body)
            m = re.fullmatch(r"/v2/accounts/([^/]+)(/[a-z-]+)?", path)
            if not m:
                return 404, {"error": "Not Found"}
            account = self._find(m.group(1))
            if account is None:
                return 404, {"error": "Account not found"}
            if account["archived"]:
                return 403, {"error": "Forbidden"}
            tail = m.group(2) or ""
            if tail == "" and method == "GET":
                return 200, self._public(account)
            if tail == "" and method == "DELETE":
                account["archived"] = True
                return 200, {"deleted": True}
            if tail == "/subscriptions" and method == "GET":
                return 200, [{"id": s} for s in sorted(account["subscriptions"])]
            if tail == "/subscriptions" and method == "POST":
                return self._toggle(account, body)
            if tail == "/update" and method == "POST":
                account["region"] = body.get("region", account["region"])
                account["info"] = body.get("info", account["info"])
                return 200, {"region": account["region"], "info": account["info"]}
            if tail == "/reset-password" and method == "POST":
                return 200, {"status": "ok", "created": "ok"}
            return 405, {"error": "Method Not Allowed"}

    def _find(self, ref: str) -> dict | None:
        return self.accounts.get(ref) or next((a for a in self.accounts.values() if a["username"] == ref), None)

    def _public(self, a: dict) -> dict:
        return {"id": a["id"], "username": a["username"], "email": a["email"], "created": a["created"],
                "updated": a["updated"], "is_blocked": False, "region": a["region"], "info": a["info"],
                "subscriptions": [{"id": s} for s in sorted(a["subscriptions"])]}

    def _list(self, query) -> tuple[int, dict]:
        size = int((query.get("page_size") or ["100"])[0])
        page = int((query.get("page_num") or ["0"])[0])
        items = [a for a in self.accounts.values() if not a["archived"]]
        if size < 0:
            size = max(1, len(items))
        chunk = items[page * size:(page + 1) * size]
        pages = max(1, -(-len(items) // size))
        return 200, {"accounts": [self._public(a) for a in chunk],
                     "pagination": {"page": page, "page_size": size, "pages": pages, "total": len(items)}}

    def _create(self, body: dict) -> tuple[int, dict]:
        username, email = str(body.get("username") or ""), str(body.get("email") or "")
        if not USERNAME_RE.match(username) or not email or "@" not in email or email != email.lower():
            return 400, {"error": "Bad Request"}
        if username in self.foreign:
            return 400, {"error": "Users exists and belongs to other provider"}
        existing = self.by_username(username)
        if existing is not None:
            existing["archived"] = False
            return 200, {"id": existing["id"], "created": False}
        purchases = body.get("purchases") or []
        if isinstance(purchases, str):
            purchases = [purchases]
        known = {str(c["id"]) for c in self.catalog}
        account = {"id": secrets.token_hex(12), "username": username, "email": email, "created": _now(),
                   "updated": _now(), "region": body.get("region") or "ru.volga.penza-obl",
                   "info": body.get("info") or {}, "subscriptions": {str(p) for p in purchases if str(p) in known},
                   "archived": False}
        self.accounts[account["id"]] = account
        return 200, {"id": account["id"], "created": True}

    def _toggle(self, account: dict, body: dict) -> tuple[int, dict]:
        sid = str(body.get("id") or "")
        valid = str(body.get("valid")).lower() in ("true", "1")
        if sid not in {str(c["id"]) for c in self.catalog}:
            return 200, {}
        if valid:
            account["subscriptions"].add(sid)
        else:
            account["subscriptions"].discard(sid)
        account["updated"] = _now()
        return 200, {"id": sid, "valid": valid}

    def _account_state(self, ref: str, body: dict) -> tuple[int, dict]:
        account = self._find(ref)
        if account is None:
            return 400, {"code": 4004, "message": "account not found", "details": ref}
        missing = [f for f in ("balance", "status", "tvSuspended", "stateTimestamp") if f not in body]
        if missing or body.get("status") not in ("active", "suspended_no_funds", "suspended_manually", "other"):
            return 400, {"code": 4000, "message": "invalid state", "details": missing or body.get("status")}
        last = self.states.get(account["id"])
        if last is None or int(body["stateTimestamp"]) > int(last["stateTimestamp"]):
            self.states[account["id"]] = dict(body)
        return 200, {"status": "ok", "message": "target state set"}

    # -- the subscriber app's pages ----------------------------------------------------------

    def _app_page(self, method: str, path: str, raw: bytes):
        note = ""
        if method == "POST" and path == "/app/buy":
            form = {k: v[-1] for k, v in parse_qs(raw.decode()).items()}
            try:
                answer = self.app.buy(form["accountId"], form["offerId"], old_offer_id=form.get("oldOfferId") or None)
                note = json.dumps(answer, ensure_ascii=False)
            except Exception as e:  # noqa: BLE001 (shown on the page)
                note = f"{type(e).__name__}: {e}"
        with self._lock:
            rows = []
            for a in self.accounts.values():
                if a["archived"]:
                    continue
                buttons = "".join(
                    f'<form method="post" action="/app/buy" style="display:inline">'
                    f'<input type="hidden" name="accountId" value="{a["id"]}">'
                    f'<input type="hidden" name="offerId" value="{html.escape(str(c["id"]))}">'
                    f'<button>{html.escape(c["name"])}</button></form> '
                    for c in self.catalog if str(c["id"]) not in a["subscriptions"])
                rows.append(f"<tr><td>{html.escape(a['username'])}</td>"
                            f"<td>{html.escape(', '.join(sorted(a['subscriptions'])) or '—')}</td>"
                            f"<td>{buttons}</td></tr>")
        page = (f"<!doctype html><meta charset=utf-8><title>Smotreshka app</title><h1>Subscriber app</h1>"
                f"<p>billing: {html.escape(self.app.url or 'not configured')}</p>"
                f"<pre>{html.escape(note)}</pre><table border=1 cellpadding=4>"
                f"<tr><th>username</th><th>subscriptions</th><th>buy</th></tr>{''.join(rows)}</table>")
        return page


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8097)
    parser.add_argument("--billing", help="the portal's base URL, for the subscriber app")
    args = parser.parse_args()
    emu = SmotreshkaEmulator(args.host, args.port).start()
    if args.billing:
        emu.app.configure(args.billing)
    print(f"smotreshka emulator on {emu.url} (subscriber app: {emu.url}/app; Ctrl+C to stop)", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        threading.Event().wait()
    emu.stop()


if __name__ == "__main__":
    main()
