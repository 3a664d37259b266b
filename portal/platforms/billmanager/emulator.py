"""A local selling BILLmanager for tests and ``make run``: ``POST|GET /billmgr`` with
``func=...&out=json`` and ``authinfo``, speaking the envelope of client.py with its quirks
(every scalar wrapped as ``{"$": "..."}``, ``elem`` an object when there is one row and
absent when there is none, errors with HTTP 200 in ``doc.error``).

Built on ``portal.platforms.emulation.EmulatedServer`` (down and up on the same port, ``latency``);
its failures are this protocol's own modes, by function (``fail`` below).

Functions: ``pricelist.export``, ``subaccount``, ``dashboard.info``, ``<type>`` (list),
``v2.<type>.order.param``, ``<type>.order.param`` (legacy), ``service.prolong``,
``<type>.suspend|resume|delete``. Client accounts have a balance that orders and renewals
really spend (short balance: error ``$type`` = ``balance``). A new service is "in progress"
(``item_status`` 5) for ``progress_seconds``, then active (2).

Failure modes, for tests::

    seller.fail("v2.vds.order.param", "timeout")   # do it (money spent), answer too late
    seller.fail("vds.suspend", "access")           # "not allowed for this level"
    seller.fail("vds.delete", "confirm")           # deletion needs a confirmation
    seller.fail("*", "auth")                       # any function: wrong login
    seller.fail("subaccount", "html")              # a DDoS guard's HTML page
    seller.heal()

Standalone: ``python -m portal.platforms.billmanager.emulator --port 8098``.
"""
from __future__ import annotations

import argparse
import calendar
import json
import threading
import time
from datetime import date
from decimal import Decimal
from urllib.parse import parse_qs, unquote, urlsplit

from ..emulation import Answer, EmulatedServer

DEMO_PRICELISTS = [
    {"id": "101", "name": "VDS-1", "itemtype": "vds", "periods": {1: "300.00", 3: "855.00", 12: "3240.00"},
     "datacenters": [("1", "Moscow DC"), ("2", "Amsterdam DC")],
     "addons": [("201", "ram", "RAM", "1024", "MB"), ("202", "disk", "Disk", "20", "GB"),
                ("203", "ncpu", "CPU", "1", "")]},
    {"id": "102", "name": "VDS-2", "itemtype": "vds", "periods": {1: "600.00", 12: "6480.00"},
     "datacenters": [("1", "Moscow DC")],
     "addons": [("211", "ram", "RAM", "2048", "MB"), ("212", "disk", "Disk", "40", "GB"),
                ("213", "ncpu", "CPU", "2", "")]},
    {"id": "201", "name": "Hosting Start", "itemtype": "vhost", "periods": {1: "99.00", 12: "990.00"},
     "datacenters": [("1", "Moscow DC")],
     "addons": [("301", "disk", "Disk", "5", "GB"), ("302", "site", "Sites", "3", "")]},
]
DEMO_LOGIN, DEMO_PASSWORD = "reseller@example.com", "Seller-Pa55"


def _w(value):
    """Wrap like BILLmanager's JSON: scalars become {"$": "text"}."""
    if isinstance(value, dict):
        return {k: (v if k.startswith("$") else _w(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_w(v) for v in value]
    return {"$": "" if value is None else str(value)}


def _elems(rows: list) -> dict:
    """``elem`` as BILLmanager writes it: absent, one object, or a list."""
    if not rows:
        return {}
    return {"elem": _w(rows[0]) if len(rows) == 1 else _w(rows)}


def _add_months(d: date, months: int) -> date:
    y, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, m + 1
    return date(year, month, min(d.day, calendar.monthrange(year, month)[1]))


# the answers werkzeug gave when this emulator ran on it, kept byte for byte
TEXT = "text/plain; charset=utf-8"
HTML = "text/html; charset=utf-8"


class SellingBillmanager(EmulatedServer):
    thread_name = "billmanager-emulator"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, progress_seconds: float = 0.3,
                 answer_delay: float = 3.0):
        super().__init__(host, port)
        self.progress_seconds = progress_seconds
        self.answer_delay = answer_delay  # how late a "timeout" failure answers
        self.accounts: dict[str, dict] = {}
        self.pricelists: list[dict] = []
        self.services: dict[str, dict] = {}
        self.calls: list[dict] = []  # every call: func, user, params without authinfo
        self.sessions: dict[str, str] = {}  # func=auth session id -> username
        self.legacy = False  # True: a BILLmanager 5 style seller without the v2.* order functions
        self._modes: list[dict] = []  # this protocol's failures (``fail``), by function
        self._next_id = 5000

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/billmgr"

    # -- control ------------------------------------------------------------------------------

    def add_account(self, username: str, password: str, balance: str = "1000.00", currency: str = "RUB",
                    authinfo: bool = True):
        """A client account; ``authinfo=False``: the seller refuses authinfo for it (sessions only)."""
        self.accounts[username] = {"password": password, "balance": Decimal(balance), "currency": currency,
                                   "authinfo": authinfo}
        return self

    def set_balance(self, username: str, balance: str) -> None:
        with self._lock:
            self.accounts[username]["balance"] = Decimal(balance)

    def balance(self, username: str) -> Decimal:
        return self.accounts[username]["balance"]

    def load_pricelists(self, pricelists=None):
        self.pricelists = [dict(p) for p in (pricelists or DEMO_PRICELISTS)]
        return self

    def fail(self, func: str, mode: str, times: int | None = 1, skip: int = 0) -> None:
        """The next ``times`` calls of ``func`` (None: all) fail, after ``skip`` that do not."""
        with self._lock:
            self._modes.append({"func": func, "mode": mode, "times": times, "skip": skip})

    def expire_sessions(self) -> None:
        with self._lock:
            self.sessions.clear()

    def heal(self) -> None:
        with self._lock:
            self._modes.clear()
        super().heal()

    # -- protocol -----------------------------------------------------------------------------

    def handle(self, method: str, path: str, headers, body: bytes) -> Answer:
        where = urlsplit(path)
        if unquote(where.path).rstrip("/") != "/billmgr":
            return Answer(404, "not found", TEXT)
        params = {k: v[-1] for k, v in parse_qs(where.query).items()}
        if method == "POST":
            params.update({k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace")).items()})
        func = params.get("func", "")
        failure = self._failure(func)
        if failure == "html":
            return Answer(200, "<html><body>Checking your browser…</body></html>", HTML)
        if failure == "down":
            return Answer(502, "Bad gateway", TEXT)
        doc = self._handle(func, params, failure)
        if failure == "timeout":
            time.sleep(self.answer_delay)
        return Answer(200, json.dumps({"doc": doc}), "application/json")

    def _failure(self, func: str) -> str | None:
        with self._lock:
            for f in self._modes:
                if f["func"] in (func, "*"):
                    if f.get("skip"):
                        f["skip"] -= 1
                        continue
                    if f["times"] is not None:
                        f["times"] -= 1
                        if f["times"] <= 0:
                            self._modes.remove(f)
                    return f["mode"]
        return None

    @staticmethod
    def _error(kind: str, msg: str, obj: str | None = None) -> dict:
        error = {"$type": kind, "msg": {"$": msg}}
        if obj:
            error["$object"] = obj
        return {"error": error}

    def _handle(self, func: str, p: dict, failure: str | None) -> dict:
        user, _, password = (p.get("authinfo") or "").partition(":")
        with self._lock:
            if func == "auth":
                user, password = p.get("username", ""), p.get("password", "")
            elif p.get("auth"):
                user = self.sessions.get(p["auth"], "")
                password = self.accounts.get(user, {}).get("password")
            self.calls.append({"func": func, "user": user, "via": "auth" if p.get("auth") else "authinfo",
                               "params": {k: v for k, v in p.items() if k not in ("authinfo", "password", "auth")}})
            self._advance()
            account = self.accounts.get(user)
            if failure == "auth" or account is None or account["password"] != password:
                return self._error("auth", "Invalid username or password")
            if p.get("authinfo") and not account.get("authinfo", True):
                return self._error("access", "Authorization by authinfo is disabled for client accounts")
            if func == "auth":
                sid = f"s{len(self.sessions) + 1:04d}{abs(hash(user)) % 10**8:08d}"
                self.sessions[sid] = user
                return {"auth": {"$id": sid, "$": sid}, "level": {"$": "16"}}
            if failure == "access":
                return self._error("access", "Access to this function is denied for your level")
            if failure == "confirm":
                return self._error("confirm", "The operation must be confirmed by a code sent to the phone")
            if func == "pricelist.export":
                return self._export(p)
            if func == "subaccount":
                return _elems([{"id": "1", "balance": f"{account['balance']:.2f}", "currency": account["currency"]}])
            if func == "dashboard.info":
                return _elems([{"balance": f"{account['balance']:.2f} {account['currency']}"}])
            if func == "service.prolong":
                return self._prolong(user, account, p)
            parts = func.split(".")
            if func.endswith(".order.param"):
                if parts[0] == "v2" and self.legacy:
                    return self._error("missed", f"Unknown function {func}", "func")
                itemtype = parts[1] if parts[0] == "v2" else parts[0]
                return self._order(user, account, itemtype, p)
            if len(parts) == 1 and any(pl["itemtype"] == func for pl in self.pricelists):
                return _elems([self._row(s) for s in sorted(self.services.values(), key=lambda s: int(s["id"]))
                               if s["account"] == user and s["itemtype"] == func])
            if len(parts) == 2 and parts[1] in ("suspend", "resume", "delete"):
                return self._change(user, parts[0], parts[1], p.get("elid", ""))
            return self._error("missed", f"Unknown function {func}", "func")

    def _advance(self) -> None:
        now = time.monotonic()
        for s in self.services.values():
            if s["status"] == 5 and now >= s["progress_until"]:
                s["status"] = s.pop("after_progress", 2)

    def _export(self, p: dict) -> dict:
        rows = []
        for pl in self.pricelists:
            if p.get("itemtype") and pl["itemtype"] != p["itemtype"]:
                continue
            if p.get("pricelist") and pl["id"] != p["pricelist"]:
                continue
            rows.append({
                "id": pl["id"], "name": pl["name"], "active": "on" if pl.get("active", True) else "off",
                "itemtype": str(abs(hash(pl["itemtype"])) % 100), "itemtype_info": {"intname": pl["itemtype"]},
                "price": {"$currency": "RUB", "period": [
                    {"$type": "month", "$length": str(m), "$cost": cost} for m, cost in sorted(pl["periods"].items())]},
                "datacenter": [{"id": i, "name": n} for i, n in pl["datacenters"]],
                "addon": [{"id": i, "intname": intname, "name": name, "addonlimit": limit, "measure": measure}
                          for i, intname, name, limit, measure in pl["addons"]],
            })
        doc = _w({"pricelist": rows}) if rows else {}
        if len(rows) == 1:
            doc["pricelist"] = doc["pricelist"][0]  # one tariff: an object, not a list
        return doc

    def _order(self, user: str, account: dict, itemtype: str, p: dict) -> dict:
        pl = next((x for x in self.pricelists if x["id"] == p.get("pricelist") and x["itemtype"] == itemtype), None)
        if pl is None:
            return self._error("value", "Tariff plan not found", "pricelist")
        if p.get("sok") != "ok":
            return _w({"pricelist": pl["id"]})
        months = int(p.get("order_period") or p.get("period") or 1)
        if months not in pl["periods"]:
            return self._error("value", "This period is not available for the tariff", "order_period")
        cost = Decimal(pl["periods"][months])
        if account["balance"] < cost:
            return self._error("balance", "Insufficient funds on the balance to pay for the order")
        account["balance"] -= cost
        self._next_id += 1
        sid = str(self._next_id)
        today = date.today()
        self.services[sid] = {
            "id": sid, "itemtype": itemtype, "account": user, "pricelist": pl["id"], "status": 5,
            "progress_until": time.monotonic() + self.progress_seconds, "createdate": today,
            "expiredate": _add_months(today, months), "domain": p.get("domain") or f"{itemtype}{sid}.seller.example",
            "remoteid": p.get("remoteid"), "cost": cost, "ip": f"10.0.{int(sid) % 250}.{int(sid) % 200 + 2}",
            "datacenter": p.get("datacenter"),
        }
        return {"ok": {}}  # like a real seller: the new id is not in the answer

    def _row(self, s: dict) -> dict:
        pl = next((x for x in self.pricelists if x["id"] == s["pricelist"]), {"name": s["pricelist"]})
        return {"id": s["id"], "pricelist": pl["name"], "pricelist_id": s["pricelist"], "domain": s["domain"],
                "ip": s["ip"], "item_status": s["status"],
                "status_msg": {3: "Suspended by client"}.get(s["status"], ""),
                "createdate": s["createdate"].isoformat(), "expiredate": s["expiredate"].isoformat(),
                "cost": f"{s['cost']:.2f}", "autoprolong": "off", "datacentername": s.get("datacenter") or ""}

    def _prolong(self, user: str, account: dict, p: dict) -> dict:
        s = self.services.get(p.get("elid", ""))
        if s is None or s["account"] != user:
            return self._error("missed", "Service not found", "elid")
        if s["status"] == 4:
            return self._error("value", "A deleted service cannot be renewed", "elid")
        months = int(p.get("period") or 1)
        pl = next(x for x in self.pricelists if x["id"] == s["pricelist"])
        cost = Decimal(pl["periods"].get(months, Decimal(pl["periods"][1]) * months))
        if account["balance"] < cost:
            return self._error("balance", "Insufficient funds on the balance to renew the service")
        if p.get("sok") != "ok":
            return _w({"elid": s["id"], "cost": f"{cost:.2f}"})
        account["balance"] -= cost
        s["expiredate"] = _add_months(s["expiredate"], months)
        return {"ok": {}}

    def _change(self, user: str, itemtype: str, action: str, elid: str) -> dict:
        s = self.services.get(elid)
        if s is None or s["account"] != user or s["itemtype"] != itemtype:
            return self._error("missed", "Service not found", "elid")
        if s["status"] == 5:
            return self._error("value", "An operation on this service is in progress", "elid")
        if s["status"] == 4:
            return self._error("missed", "The service has been deleted", "elid")
        s["status"] = {"suspend": 3, "resume": 2, "delete": 4}[action]
        return {"ok": {}}

    # -- for tests: what the seller's staff might do ---------------------------------------------

    def status(self, sid: str) -> int:
        """A service's ``item_status`` now ("in progress" ends on its own after a moment)."""
        with self._lock:
            self._advance()
            return self.services[sid]["status"]

    def delete_remotely(self, sid: str) -> None:
        with self._lock:
            self.services[sid]["status"] = 4


def demo() -> SellingBillmanager:
    return SellingBillmanager().add_account(DEMO_LOGIN, DEMO_PASSWORD, "5000.00").load_pricelists()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8098)
    args = parser.parse_args()
    seller = SellingBillmanager(args.host, args.port).add_account(DEMO_LOGIN, DEMO_PASSWORD, "5000.00")
    seller.load_pricelists().start()
    print(f"selling BILLmanager on {seller.url}: {DEMO_LOGIN} / {DEMO_PASSWORD} (Ctrl+C to stop)", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        seller.stop()


if __name__ == "__main__":
    main()
