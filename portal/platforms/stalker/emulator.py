"""A Stalker (Ministra) stand-in serving ``/stalker_portal/api/...`` (REST API v1) with the
rules and quirks of protocols/stalker.md, for tests, benchmarks and ``make run``.

Quirks reproduced: HTTP 200 with ``{"status": "ERROR"}`` for refusals, 401 with a JSON body,
a plain-text 404 ``API not enabled`` when the API is off, numbers as strings (``status`` an
int), identifiers (MAC when 12+ characters with a colon for accounts, 12+ characters for STB
resources), account numbers shared by several users, ``accounts`` answering lists and
``users`` the first object, an unknown ``tariff_plan`` silently giving the default plan,
login/MAC uniqueness checked on POST (on PUT only a new login; a MAC is not checked), ``users``
taking a login as its identifier for every method (GET answers one object), a PUT with a
login and password onto a MAC-only user accepted (it then logs in by login), an empty
``stb_mac`` clearing the MAC, ``account_subscription`` toggling only the packages that are
optional in the user's plan and answering ``results: false`` when it changed nothing,
``itv_subscription`` answering every row when the identifier matches nobody, status 1 =
active. Passwords are kept as md5(md5(pw)+uid) and never returned. ``access_log`` is
Stalker's api_access.log (on by default): every request with its body in clear text,
passwords included (``password_pushes()`` counts them).

    emu = StalkerEmulator(login="api", password="secret").start()
    emu.seed_demo()                       # plans, packages, channels, accounts, STBs
    emu.fail("Database error", times=2)   # the next two calls answer status ERROR
    emu.fail("Database error", resource="itv", method="GET")   # only those calls, until healed
    emu.fail("Bad gateway", status=502)   # HTTP 502 (with the ERROR body) instead of 200
    emu.latency = 0.5                     # every answer half a second late
    emu.api_enabled = False               # plain-text 404 "API not enabled"
    emu.down(); emu.up()                  # refuse connections, then listen again
    emu.find(login="ivan")                # a user's state, for tests
    emu.password_pushes("ivan")           # requests whose body carried a password (api_access.log)

Standalone: ``python -m portal.platforms.stalker.emulator --port 8095 --demo``.
"""
from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import re
import threading
from urllib.parse import parse_qsl, unquote

from ..emulation import Answer, EmulatedServer

WRITABLE = ("login", "password", "full_name", "phone", "account_number", "tariff_plan", "status", "stb_mac",
            "comment", "end_date", "account_balance")


def _mac(value: str) -> str | None:
    mac = (value or "").upper()
    if re.fullmatch(r"[0-9A-F]{12}", mac):
        mac = ":".join(mac[i:i + 2] for i in range(0, 12, 2))
    return mac if re.fullmatch(r"([0-9A-F]{2}:){5}[0-9A-F]{2}", mac) else None


def _parse(body: bytes) -> dict:
    """PHP parse_str: ``a=1&b[]=2&b[]=3`` -> {"a": "1", "b": ["2", "3"]}."""
    out: dict = {}
    for key, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
        if key.endswith("[]"):
            out.setdefault(key[:-2], []).append(value)
        else:
            out[key] = value
    return out


class ApiError(Exception):
    pass


class StalkerEmulator(EmulatedServer):
    thread_name = "stalker-emulator"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, login: str | None = "api",
                 password: str | None = "api-secret"):
        super().__init__(host, port)
        self.api_login, self.api_password = login, password
        self.api_enabled = True
        self.requests: list[dict] = []  # method, path, form body (passwords masked), status
        self.access_log: list[str] = []  # api_access.log: "METHOD path body", the body in clear text
        self.users: dict[int, dict] = {}
        self.plans: dict[int, dict] = {}
        self.packages: dict[int, dict] = {}
        self.channels: dict[int, dict] = {}
        self.events: list[dict] = []  # events and messages sent to STBs
        self._next_uid = 1
        self.keep_requests = True

    @property
    def url(self) -> str:
        return f"{self.base_url}/stalker_portal/api/"

    # -- control ----------------------------------------------------------------------------------

    def fail(self, message: str = "emulated failure", status: int = 200, times: int | None = None,
             **match) -> None:
        """Refuse calls (``resource=``/``method=`` narrow it): Stalker's way is HTTP 200 with
        ``{"status": "ERROR", "error": message}``; another ``status`` answers that HTTP status
        with the same body (a proxy in front of Stalker failing)."""
        super().fail(message, status, times, **match)

    def heal(self) -> None:
        super().heal()
        self.api_enabled = True

    # -- state --------------------------------------------------------------------------------------

    def add_plan(self, external_id: str, name: str, packages=(), user_default: bool = False,
                 days_to_expires: int = 0) -> dict:
        """A tariff plan; ``packages``: (package, optional) pairs."""
        with self._lock:
            pid = max(self.plans, default=0) + 1
            plan = {"id": pid, "external_id": str(external_id), "name": name, "user_default": user_default,
                    "days_to_expires": days_to_expires, "packages": [(p["id"], bool(o)) for p, o in packages]}
            self.plans[pid] = plan
            return plan

    def add_package(self, external_id: str, name: str, price: str = "0.00", type: str = "tv",
                    channels=None, service_type: str = "periodic", description: str = "") -> dict:
        with self._lock:
            pid = max(self.packages, default=0) + 1
            pkg = {"id": pid, "external_id": external_id, "name": name, "description": description, "type": type,
                   "all_services": channels is None, "service_type": service_type, "rent_duration": 0,
                   "price": price, "channels": list(channels or [])}
            self.packages[pid] = pkg
            return pkg

    def add_channel(self, name: str, number: int | None = None, hd: bool = False) -> dict:
        with self._lock:
            cid = max(self.channels, default=0) + 1
            ch = {"id": cid, "name": name, "number": number or cid, "base_ch": 1, "hd": int(hd),
                  "url": f"http://streams.local/ch{cid}", "enable_monitoring": 0, "descr": ""}
            self.channels[cid] = ch
            return ch

    def add_user(self, login: str, account_number: str = "", tariff_plan: str | None = None, status: int = 1,
                 mac: str = "", password: str = "", **fields) -> dict:
        """A user as if created in Stalker's own admin (no checks)."""
        with self._lock:
            return self._insert({"login": login, "account_number": account_number, "tariff_plan": tariff_plan,
                                 "status": status, "stb_mac": mac, "password": password, **fields})

    def find(self, login: str | None = None, ls: str | None = None, mac: str | None = None) -> dict | None:
        with self._lock:
            for u in self.users.values():
                if (login is None or u["login"] == login) and (ls is None or u["ls"] == str(ls)) and \
                        (mac is None or u["mac"] == mac):
                    return u
        return None

    def seed_demo(self) -> StalkerEmulator:
        """The demo data set: three plans, three packages, twelve channels, five accounts with STBs."""
        names = ["Первый канал", "Россия 1", "НТВ", "Пятый канал", "Культура", "Матч ТВ", "Карусель",
                 "СТС", "ТНТ", "Discovery", "Кинохит HD", "Спорт 1 HD"]
        chans = [self.add_channel(n, i + 1, hd=n.endswith("HD")) for i, n in enumerate(names)]
        base = self.add_package("pkg_base", "Базовый", "0.00", channels=[c["id"] for c in chans[:9]])
        sport = self.add_package("pkg_sport", "Спорт", "149.00", channels=[chans[5]["id"], chans[11]["id"]])
        kino = self.add_package("pkg_kino", "Кино", "199.00", channels=[chans[9]["id"], chans[10]["id"]])
        self.add_plan("9001", "Стартовый", [(base, False)], user_default=True)
        self.add_plan("9002", "Оптимальный", [(base, False), (sport, True)])
        self.add_plan("9003", "Максимальный", [(base, False), (sport, True), (kino, True)])
        self.add_user("tv_petrov", "501", "9001", 1, "00:1A:79:00:00:01", "petrov1", full_name="Петров Пётр",
                      phone="+7 900 111-22-33", stb_type="MAG250", online=True, ip="10.0.0.11")
        self.add_user("tv_sidorova", "502", "9002", 1, "00:1A:79:00:00:02", "sidor22", full_name="Сидорова Анна",
                      stb_type="MAG322", subscribed={sport["id"]})
        self.add_user("tv_orlov", "503", "9003", 0, "00:1A:79:00:00:03", "orlov33", full_name="Орлов Олег",
                      stb_type="MAG420", subscribed={sport["id"], kino["id"]})
        self.add_user("tv_guest", "guest-1", "9002", 1, "00:1A:79:00:00:04", "guest44", full_name="Гость")
        self.add_user("tv_hotel", "7777", "unknown_plan", 1, "00:1A:79:00:00:05", "hotel55", full_name="Гостиница")
        return self

    def seed_accounts(self, n: int, start: int = 100000, plan: str = "9001") -> None:
        """``n`` plain accounts (benchmarks)."""
        with self._lock:
            for i in range(n):
                num = start + i
                self._insert({"login": f"bench{num}", "account_number": str(num), "tariff_plan": plan,
                              "status": 1, "stb_mac": "00:2B:" + ":".join(
                                  f"{num >> shift & 255:02X}" for shift in (24, 16, 8, 0)),
                              "full_name": f"Bench {num}", "password": ""})

    # -- the HTTP layer ---------------------------------------------------------------------------

    def handle(self, method: str, path: str, headers, body: bytes) -> Answer:
        m = re.match(r"^/stalker_portal/api(?:/v1)?/([^?]*)", path)
        if not m:
            return Answer(404, b"Not Found", "text/plain")
        if not self.api_enabled:
            return Answer(404, b"API not enabled", "text/plain")
        if self.api_login:
            expected = "Basic " + base64.b64encode(f"{self.api_login}:{self.api_password or ''}".encode()).decode()
            if headers.get("Authorization") != expected:
                return Answer(401, {"status": "ERROR", "results": "", "error": "401 Unauthorized request"},
                              headers={"WWW-Authenticate": 'Basic realm="Stalker API"'})
        segments = m.group(1).split("/")
        resource = unquote(segments[0])
        ids = [unquote(i) for i in segments[1].split(",")] if len(segments) > 1 and segments[1] else []
        fields = _parse(body)
        if self.keep_requests:
            with self._lock:
                self.access_log.append(f"{method} {path} {body.decode('utf-8', 'replace')}")
        failure = self.take_failure(resource=resource.lower(), method=method)
        status = failure.status if failure is not None else 200
        with self._lock:
            try:
                if failure is not None:
                    raise ApiError(failure.message)
                results = self._dispatch(method, resource, ids, fields, bool(body))
                answer = {"status": "OK", "results": results}
            except ApiError as e:
                answer = {"status": "ERROR", "results": None, "error": str(e)}
            if self.keep_requests:
                shown = {k: ("***" if k == "password" else v) for k, v in fields.items()}
                self.requests.append({"method": method, "resource": resource, "ids": ids, "fields": shown,
                                      "status": answer["status"]})
        return Answer(status, answer)

    def _dispatch(self, method, resource, ids, fields, has_body):
        if not resource:
            raise ApiError("Empty resource")
        name = resource.lower()
        handlers = {"accounts": self._accounts, "users": self._users, "stb": self._stb, "itv": self._itv,
                    "itv_subscription": self._itv_subscription, "tariffs": self._tariffs,
                    "services_package": self._services_package, "account_subscription": self._account_subscription,
                    "send_event": self._send_event, "stb_msg": self._stb_msg}
        if name not in handlers:
            raise ApiError(f'Resource "{resource}" does not exist')
        if method not in ("GET", "POST", "PUT", "DELETE"):
            raise ApiError("Not supported method")
        return handlers[name](method, ids, fields, has_body, resource)

    @staticmethod
    def _unsupported(resource, method):
        action = {"GET": "get", "POST": "create", "PUT": "update", "DELETE": "delete"}[method]
        raise ApiError(f'Resource "{resource}" does not support action "{action}"')

    # -- identifiers ------------------------------------------------------------------------------

    def _match(self, ident: str, colon_rule: bool) -> list[dict]:
        is_mac = len(ident) >= 12 and (":" in ident or not colon_rule)
        if is_mac:
            mac = _mac(ident) or ident.upper()
            return [u for u in self.users.values() if u["mac"] == mac]
        return [u for u in self.users.values() if u["ls"] == ident]

    def _select(self, ids, colon_rule: bool = True) -> list[dict]:
        if not ids:
            return list(self.users.values())
        found, missing = [], 0
        for ident in ids:
            rows = self._match(ident, colon_rule)
            missing += not rows
            found += [u for u in rows if u not in found]
        if missing:
            raise ApiError("Account not found" if len(ids) == 1 else "One or more identifiers are incorrect")
        return found

    # -- rows -------------------------------------------------------------------------------------

    def _plan_by_external(self, external_id) -> dict | None:
        return next((p for p in self.plans.values() if p["external_id"] == str(external_id)), None)

    def _default_plan(self) -> dict | None:
        return next((p for p in self.plans.values() if p["user_default"]), None)

    def _insert(self, data: dict) -> dict:
        uid = self._next_uid
        self._next_uid += 1
        plan = self._plan_by_external(data.get("tariff_plan")) if data.get("tariff_plan") is not None else None
        u = {"id": uid, "login": data.get("login", ""), "full_name": data.get("full_name", ""),
             "phone": data.get("phone", ""), "ls": str(data.get("account_number") or ""),
             "plan_id": plan["id"] if plan else 0, "status": int(data.get("status", 1) or 0),
             "mac": _mac(data.get("stb_mac") or "") or "", "stb_sn": data.get("stb_sn", ""),
             "stb_type": data.get("stb_type", ""), "online": bool(data.get("online")), "ip": data.get("ip", ""),
             "version": "", "comment": data.get("comment", ""), "end_date": data.get("end_date", ""),
             "account_balance": str(data.get("account_balance") or "0.00"),
             "last_active": data.get("last_active", ""), "subscribed": set(data.get("subscribed") or ()),
             "sub_ch": [], "additional_services_on": 1, "password": ""}
        self._set_password(u, data.get("password") or "")
        self.users[uid] = u
        return u

    @staticmethod
    def _set_password(u: dict, password: str) -> None:
        if password:
            inner = hashlib.md5(password.encode()).hexdigest()
            u["password"] = hashlib.md5((inner + str(u["id"])).encode()).hexdigest()

    def password_pushes(self, login: str | None = None) -> int:
        """How many logged requests carried a password (for ``login``: the ones naming it in
        the path or the body), as Stalker's api_access.log would show them."""
        return sum(1 for line in self.access_log if "password=" in line and
                   (login is None or f"/{login} " in line or f"login={login}&" in line + "&"))

    def check_password(self, login: str, password: str) -> bool:
        u = self.find(login=login)
        return bool(u) and u["password"] == hashlib.md5(
            (hashlib.md5(password.encode()).hexdigest() + str(u["id"])).encode()).hexdigest()

    def _plan_row(self, plan_id: int) -> dict | None:
        return self.plans.get(plan_id) or self._default_plan()

    def _account_row(self, u: dict) -> dict:
        plan = self._plan_row(u["plan_id"])
        subs = sorted(u["subscribed"])
        return {"login": u["login"], "full_name": u["full_name"], "phone": u["phone"], "account_number": u["ls"],
                "tariff_plan": plan["external_id"] if plan else "", "stb_sn": u["stb_sn"], "stb_mac": u["mac"],
                "stb_type": u["stb_type"], "status": u["status"],
                "online": ("1" if u["online"] else "0") if u["mac"] else None, "ip": u["ip"] or None,
                "version": u["version"], "comment": u["comment"], "end_date": self._end_date(u),
                "account_balance": u["account_balance"], "last_active": u["last_active"] or None,
                "subscribed": [self.packages[p]["external_id"] for p in subs if p in self.packages],
                "subscribed_id": [str(p) for p in subs]}

    def _apply(self, u: dict, fields: dict) -> None:
        for key in WRITABLE:
            if key not in fields:
                continue
            value = fields[key]
            if key == "password":
                self._set_password(u, value)
            elif key == "account_number":
                u["ls"] = str(value)
            elif key == "tariff_plan":
                plan = self._plan_by_external(value)
                u["plan_id"] = plan["id"] if plan else 0  # the quirk: unknown -> default plan, no error
            elif key == "status":
                new = 1 if str(value) == "1" else 0
                if new != u["status"]:
                    self.events.append({"mac": u["mac"], "event": "cut_on" if new else "cut_off"})
                u["status"] = new
            elif key == "stb_mac":
                u["mac"] = (_mac(value) or value.upper()) if value else ""  # not validated on PUT
            else:
                u[key] = value

    # -- resources --------------------------------------------------------------------------------

    @staticmethod
    def _writable(fields, has_body, empty: str) -> dict:
        if not has_body:
            raise ApiError("HTTP POST data is empty")  # Stalker says POST for PUT too
        data = {k: v for k, v in fields.items() if k in WRITABLE}
        if not data:
            raise ApiError(empty)
        return data

    def _accounts(self, method, ids, fields, has_body, resource, by_login: bool = False):
        if by_login and ids:  # users: the identifier is a login (a MAC when 12+ characters with ':')
            rows = [self._by_login(i) for i in ids]
            if any(r is None for r in rows):
                raise ApiError("Account not found" if len(ids) == 1 else "One or more identifiers are incorrect")
            users = [u for n, u in enumerate(rows) if u not in rows[:n]]
        else:
            users = None
        if method == "GET":
            return [self._account_row(u) for u in (users if users is not None else self._select(ids))]
        if method == "POST":
            data = self._writable(fields, has_body, "Insert data is empty")
            if data.get("stb_mac") and not _mac(data["stb_mac"]):
                raise ApiError("Not valid mac address")
            if not data.get("login"):
                raise ApiError("Login required")
            if self.find(login=data["login"]):
                raise ApiError("Login already in use")
            if data.get("stb_mac") and self.find(mac=_mac(data["stb_mac"])):
                raise ApiError("MAC address already in use")
            self._insert(data)
            return True
        if not ids:
            raise ApiError("Identifier required")
        if len(ids) > 1:
            raise ApiError("Only one identifier allowed")
        users = users if users is not None else self._select(ids)
        if method == "PUT":
            data = self._writable(fields, has_body, "Insert data is empty")  # sic: Stalker's text for PUT too
            if data.get("login"):
                other = self.find(login=data["login"])
                if other is not None and (other is not users[0] or len(users) > 1):
                    raise ApiError("Login already in use")
            for u in users:
                self._apply(u, data)
            return True
        for u in users:
            del self.users[u["id"]]
        return True

    def _by_login(self, ident: str) -> dict | None:
        if len(ident) >= 12 and ":" in ident:
            return self.find(mac=_mac(ident) or ident)
        return self.find(login=ident)

    def _users(self, method, ids, fields, has_body, resource):
        """``accounts`` with a login for identifier; GET answers the first object, not a list."""
        result = self._accounts(method, ids, fields, has_body, resource, by_login=True)
        if method == "GET":
            return result[0] if result else result
        return result

    @staticmethod
    def _end_date(u: dict) -> str:
        """(S2, issue 13) Stalker 4.9.35 reads an unset end_date as a zero datetime."""
        return u["end_date"] or "0000-00-00 00:00:00"

    def _stb_row(self, u: dict) -> dict:
        return {"mac": u["mac"], "ls": u["ls"], "login": u["login"], "status": u["status"],
                "online": "1" if u["online"] else "0", "additional_services_on": str(u["additional_services_on"]),
                "ip": u["ip"] or None, "version": u["version"], "account_balance": u["account_balance"],
                "last_active": u["last_active"] or None, "end_date": self._end_date(u)}

    def _stb(self, method, ids, fields, has_body, resource):
        if method == "GET":
            return [self._stb_row(u) for u in self._select(ids, colon_rule=False)]
        if method == "POST":
            mac = _mac(fields.get("mac", ""))
            if not mac and not (fields.get("login") and fields.get("password")):
                raise ApiError("Login and password required")
            if mac and self.find(mac=mac):
                raise ApiError("Stb already exists")
            u = self._insert({"login": fields.get("login", ""), "password": fields.get("password", ""),
                              "stb_mac": mac or "", "account_number": fields.get("ls", ""),
                              "status": fields.get("status", 1)})
            return self._stb_row(u)
        if not ids:
            raise ApiError("Identifier required")
        try:
            users = self._select(ids, colon_rule=False)
        except ApiError:
            raise ApiError("STB not found") from None
        if method == "PUT":
            for u in users:
                if "status" in fields:
                    self._apply(u, {"status": fields["status"]})
                if "ls" in fields:
                    u["ls"] = fields["ls"]
                if "additional_services_on" in fields:
                    u["additional_services_on"] = int(fields["additional_services_on"] or 0)
                if "reboot" in fields:
                    self.events.append({"mac": u["mac"], "event": "reboot"})
            return [self._stb_row(u) for u in users]
        for u in users:
            del self.users[u["id"]]
        return True

    def _itv(self, method, ids, fields, has_body, resource):
        if method == "GET":
            chans = [self.channels[int(i)] for i in ids if i.isdigit() and int(i) in self.channels] if ids \
                else list(self.channels.values())
            return [{k: str(v) for k, v in c.items()} for c in chans]
        if method == "PUT":
            if not ids:
                raise ApiError("Empty channel id")
            return True
        self._unsupported(resource, method)

    def _itv_subscription(self, method, ids, fields, has_body, resource):
        if method == "GET":
            try:
                users = self._select(ids, colon_rule=False)
            except ApiError:
                users = list(self.users.values())  # the quirk: no match means no filter
            return [{"ls": u["ls"], "mac": u["mac"], "sub_ch": [str(c) for c in u["sub_ch"]],
                     "additional_services_on": str(u["additional_services_on"])} for u in users if u["sub_ch"]]
        if method == "PUT":
            users = self._select(ids, colon_rule=False)  # no identifier: every user (the API's rule)
            for u in users:
                if "sub_ch" in fields:
                    u["sub_ch"] = [int(c) for c in fields["sub_ch"] if str(c).isdigit()]
                if "additional_services_on" in fields:
                    u["additional_services_on"] = int(fields["additional_services_on"] or 0)
            return [{"ls": u["ls"], "mac": u["mac"], "sub_ch": [str(c) for c in u["sub_ch"]],
                     "additional_services_on": str(u["additional_services_on"])} for u in users]
        self._unsupported(resource, method)

    def _package_row(self, p: dict, optional=None) -> dict:
        row = {"id": str(p["id"]), "external_id": p["external_id"], "name": p["name"],
               "description": p["description"], "type": p["type"], "all_services": "1" if p["all_services"] else "0",
               "service_type": p["service_type"], "rent_duration": str(p["rent_duration"]), "price": p["price"]}
        if optional is not None:
            row["optional"] = "1" if optional else "0"
        return row

    def _plan_out(self, plan: dict) -> dict:
        return {"id": str(plan["id"]), "external_id": plan["external_id"], "name": plan["name"],
                "user_default": "1" if plan["user_default"] else "0", "days_to_expires": str(plan["days_to_expires"]),
                "packages": [self._package_row(self.packages[pid], opt) for pid, opt in plan["packages"]
                             if pid in self.packages]}

    def _tariffs(self, method, ids, fields, has_body, resource):
        if method != "GET":
            self._unsupported(resource, method)
        if ids:
            plan = self.plans.get(int(ids[0])) if ids[0].isdigit() else None
            return self._plan_out(plan) if plan else None
        return [self._plan_out(p) for p in self.plans.values()]

    def _services_package(self, method, ids, fields, has_body, resource):
        if method != "GET":
            self._unsupported(resource, method)
        pkgs = [self.packages[int(i)] for i in ids if i.isdigit() and int(i) in self.packages] if ids \
            else list(self.packages.values())
        out = []
        for p in pkgs:
            row = self._package_row(p)
            row["services"] = "all" if p["all_services"] else [
                {"id": str(c), "name": self.channels[c]["name"]} for c in p["channels"] if c in self.channels]
            out.append(row)
        return out

    def _account_subscription(self, method, ids, fields, has_body, resource):
        if not ids:
            raise ApiError("Identifier required")
        if len(ids) > 1:
            raise ApiError("Only one identifier allowed")
        users = self._select(ids, colon_rule=False)
        if method in ("POST", "PUT"):
            if not has_body:
                raise ApiError(f"HTTP {method} data is empty")
            keys = ("subscribed", "subscribed_id") + (("unsubscribed", "unsubscribed_id") if method == "PUT" else ())
            if not any(k in fields for k in keys):
                raise ApiError("Insert data is empty")
        if method == "GET":
            return [{"mac": u["mac"], "subscribed": [self.packages[p]["external_id"] for p in sorted(u["subscribed"])],
                     "subscribed_id": [str(p) for p in sorted(u["subscribed"])]} for u in users]

        def resolve(ext_key, id_key):
            out = set()
            for e in fields.get(ext_key, []):
                out |= {p["id"] for p in self.packages.values() if p["external_id"] == e}
            out |= {int(i) for i in fields.get(id_key, []) if str(i).isdigit()}
            return out

        changed = False
        for u in users:
            plan = self._plan_row(u["plan_id"])
            allowed = {pid for pid, opt in (plan["packages"] if plan else []) if opt}
            before = set(u["subscribed"])
            if method == "POST":
                u["subscribed"] = resolve("subscribed", "subscribed_id") & allowed
            elif method == "PUT":
                u["subscribed"] = (u["subscribed"] | (resolve("subscribed", "subscribed_id") & allowed)) - \
                    resolve("unsubscribed", "unsubscribed_id")
            else:
                u["subscribed"] = set()
            if u["subscribed"] != before:
                changed = True
                self.events.append({"mac": u["mac"], "event": "reboot", "msg": "services updated"})
        return changed  # false when nothing changed: a package not optional in the plan is no change

    def _send_event(self, method, ids, fields, has_body, resource):
        if method != "POST":
            self._unsupported(resource, method)
        users = self._select(ids, colon_rule=False) if ids else list(self.users.values())
        if ids and not users:
            raise ApiError("STB not found")
        known = ("send_msg", "send_msg_with_video", "reboot", "reload_portal", "update_channels", "play_channel",
                 "play_radio_channel", "update_image", "cut_off", "show_menu")
        if fields.get("event") not in known:
            return False
        for u in users:
            self.events.append({"mac": u["mac"], "event": fields["event"], "msg": fields.get("msg")})
        return True

    def _stb_msg(self, method, ids, fields, has_body, resource):
        if method != "POST":
            self._unsupported(resource, method)
        if not fields.get("msg"):
            raise ApiError("Empty msg")
        try:
            users = self._select(ids, colon_rule=False)
        except ApiError:
            raise ApiError("Empty stb list") from None
        for u in users:
            self.events.append({"mac": u["mac"], "event": "msg", "msg": fields["msg"]})
        return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for flag, default in (("--host", "127.0.0.1"), ("--login", "api"), ("--password", "api-secret")):
        parser.add_argument(flag, default=default)
    parser.add_argument("--port", type=int, default=8095)
    parser.add_argument("--demo", action="store_true", help="seed the demo data set")
    parser.add_argument("--accounts", type=int, default=0, help="also seed N plain accounts")
    args = parser.parse_args()
    emu = StalkerEmulator(args.host, args.port, args.login, args.password)
    emu.keep_requests = False
    if args.demo:
        emu.seed_demo()
    emu.seed_accounts(args.accounts)
    print(f"Stalker emulator on {emu.start().url} (Ctrl+C to stop)", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        threading.Event().wait()
    emu.stop()


if __name__ == "__main__":
    main()
