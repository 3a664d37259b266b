"""A local «Интерсвязь» platform speaking the draft contract of client.py, for tests, the
benchmark and ``make run``. It keeps its own profiles in memory; each address stores the
access-profile fields of section 5.2 (``client.ACCESS_FIELDS``), no more, no less.

    platform = IntercomEmulator(token="key").start()
    platform.add_profile("ivanov", "Иванов И. И.", ["+7 900 000-00-00"])   # one made elsewhere
    platform.fail("maintenance", status=503, times=2)      # the next two requests
    platform.fail("no such house", status=422, login="ivanov", method="PUT")   # always, for one
    platform.latency = 0.2                                 # every answer 200 ms late
    platform.heal()                                        # no more failures, no latency
    platform.down(); platform.up()                         # refuse connections, then listen again
    platform.profiles["ivanov"]["addresses"]               # {account_id: {house_id, flat, access}}
    platform.ids_as_strings = True                         # answer "account_id": "42", not 42

Beyond the contract, for people: ``GET /`` is an HTML page of every profile with its
addresses and access (no key needed: a local demo), ``GET /profiles`` the same as JSON (key
needed).

Standalone with the demo profiles: ``python -m portal.platforms.intercom.emulator --port 8096
--token demo-intercom-key`` (``--no-demo``: empty, as the benchmark wants it).
"""
from __future__ import annotations

import argparse
import html
import json
import re
import threading
from urllib.parse import unquote, urlsplit

from ..emulation import Answer, EmulatedServer
from .client import ACCESS_FIELDS

LOGIN_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
DEMO_PROFILES = [
    # profiles that exist on the platform before the portal links them (see demo_load)
    ("sidorova.anna", "Сидорова Анна Викторовна", ["+7 903 111-22-33"]),
    ("kuznetsov", "Кузнецов Иван Сергеевич", ["+7 926 555-44-33"]),
]


class IntercomEmulator(EmulatedServer):
    thread_name = "intercom-emulator"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, token: str | None = "intercom-key"):
        super().__init__(host, port)
        self.token = token
        self.profiles: dict[str, dict] = {}
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status)
        self.keep_requests = True
        # the draft contract does not fix the JSON type of an address's account_id: a platform
        # may answer it as a string; tests run both
        self.ids_as_strings = False

    @property
    def url(self) -> str:
        return f"{self.base_url}/api/v1"

    def add_profile(self, login: str, full_name: str, phones: list[str] | None = None,
                    addresses: dict | None = None) -> dict:
        with self._lock:
            self.profiles[login] = {"login": login, "full_name": full_name, "phones": list(phones or []),
                                    "addresses": dict(addresses or {})}
            return self.profiles[login]

    def load_demo(self) -> IntercomEmulator:
        for login, name, phones in DEMO_PROFILES:
            self.add_profile(login, name, phones, {
                # a flat the operator's previous billing put there: ours to look at, not to touch
                "900001": {"house_id": "ул. Пушкина, 10", "flat": "7", "access": {f: True for f in ACCESS_FIELDS}},
            } if login == "kuznetsov" else None)
        return self

    # -- protocol -------------------------------------------------------------------------------

    def handle(self, method: str, raw_path: str, headers, body: bytes) -> Answer:
        path = urlsplit(raw_path).path
        if method == "GET" and path in ("/", "/api/v1", "/api/v1/"):
            return Answer(200, self._html(), "text/html; charset=utf-8")
        status, answer = self._api(method, path, headers.get("Authorization"), body)
        if self.keep_requests:
            self.requests.append((method, path, status))
        return Answer(status, answer if answer is not None else b"")

    def _api(self, method: str, path: str, authorization: str | None, body: bytes) -> tuple[int, dict | None]:
        if not path.startswith("/api/v1/"):
            return 404, {"error": "not_found", "message": "no such endpoint"}
        parts = [unquote(p) for p in path[len("/api/v1/"):].split("/") if p]
        if self.token and authorization != f"Bearer {self.token}":
            return 401, {"error": "unauthorized", "message": "invalid API key"}
        login = parts[1] if len(parts) > 1 else None
        if method == "POST" and parts == ["profiles"]:
            data = _body(body)
            login = data.get("login") if isinstance(data, dict) else None
        with self._lock:
            failure = self.take_failure(login=login, method=method)
            if failure is not None:
                return failure.status, {"error": "failure", "message": failure.message}
            return self._route(method, parts, body)

    def _route(self, method: str, parts: list[str], body: bytes) -> tuple[int, dict | None]:
        if parts == ["profiles"] and method == "GET":
            return 200, {"profiles": [self._public(p) for _k, p in sorted(self.profiles.items())]}
        if parts == ["profiles"] and method == "POST":
            data = _body(body)
            errors = _check_profile(data)
            if errors:
                return 422, {"error": "validation", "message": "; ".join(errors)}
            if data["login"] in self.profiles:
                return 409, {"error": "exists", "message": f"profile {data['login']} exists"}
            self.profiles[data["login"]] = {"login": data["login"], "full_name": data["full_name"],
                                            "phones": list(data.get("phones") or []), "addresses": {}}
            return 201, self._public(self.profiles[data["login"]])
        if len(parts) < 2 or parts[0] != "profiles":
            return 404, {"error": "not_found", "message": "no such endpoint"}
        profile = self.profiles.get(parts[1])
        if len(parts) == 2:
            if method == "GET":
                return ((200, self._public(profile)) if profile
                        else (404, {"error": "not_found", "message": "no such profile"}))
            if method == "DELETE":
                if not profile:
                    return 404, {"error": "not_found", "message": "no such profile"}
                del self.profiles[parts[1]]
                return 204, None
            if method == "PATCH":
                if not profile:
                    return 404, {"error": "not_found", "message": "no such profile"}
                data = _body(body)
                errors = _check_profile({**(data if isinstance(data, dict) else {}), "login": parts[1]}) \
                    if isinstance(data, dict) else ["a JSON object {full_name, phones}"]
                if errors:
                    return 422, {"error": "validation", "message": "; ".join(errors)}
                profile["full_name"], profile["phones"] = data["full_name"], list(data.get("phones") or [])
                return 200, self._public(profile)
            return 405, {"error": "method", "message": "method not allowed"}
        if len(parts) == 4 and parts[2] == "addresses":
            if not profile:
                return 404, {"error": "not_found", "message": "no such profile"}
            key = parts[3]
            if method == "PUT":
                data = _body(body)
                errors = _check_address(data)
                if errors:
                    return 422, {"error": "validation", "message": "; ".join(errors)}
                existed = key in profile["addresses"]
                profile["addresses"][key] = {"house_id": data["house_id"], "flat": data["flat"],
                                             "access": {f: data["access"][f] for f in ACCESS_FIELDS}}
                return (200 if existed else 201), _address(key, profile["addresses"][key], self.ids_as_strings)
            if method == "DELETE":
                if key not in profile["addresses"]:
                    return 404, {"error": "not_found", "message": "no such address"}
                del profile["addresses"][key]
                return 204, None
            return 405, {"error": "method", "message": "method not allowed"}
        return 404, {"error": "not_found", "message": "no such endpoint"}

    def _public(self, p: dict) -> dict:
        return {"login": p["login"], "full_name": p["full_name"], "phones": p["phones"],
                "addresses": [_address(k, a, self.ids_as_strings)
                              for k, a in sorted(p["addresses"].items(), key=lambda kv: kv[0])]}

    def _html(self) -> str:
        with self._lock:
            profiles = [self._public(p) for _k, p in sorted(self.profiles.items())]
        rows = []
        for p in profiles:
            addresses = "".join(
                f"<li>{html.escape(a['house_id'])}, кв. {html.escape(a['flat'])} — "
                f"<b>{_level(a['access'])}</b> <small>(account {a['account_id']})</small></li>"
                for a in p["addresses"]) or "<li><i>no addresses</i></li>"
            rows.append(f"<tr><td><code>{html.escape(p['login'])}</code></td><td>{html.escape(p['full_name'])}</td>"
                        f"<td>{html.escape(', '.join(p['phones']))}</td><td><ul>{addresses}</ul></td></tr>")
        return ("<!doctype html><meta charset=utf-8><title>«Интерсвязь» emulator</title>"
                "<style>body{font:14px system-ui;margin:2em}td{vertical-align:top;padding:.4em .8em;"
                "border-bottom:1px solid #ddd}ul{margin:0;padding-left:1.2em}</style>"
                "<h1>«Интерсвязь» emulator: profiles</h1><table><tr><th>login</th><th>name</th><th>phones</th>"
                f"<th>addresses</th></tr>{''.join(rows)}</table>")


def _body(body: bytes):
    try:
        return json.loads(body or b"null")
    except ValueError:
        return None


def _check_profile(data) -> list[str]:
    if not isinstance(data, dict):
        return ["a JSON object {login, full_name, phones}"]
    errors = []
    if not isinstance(data.get("login"), str) or not LOGIN_RE.match(data["login"]):
        errors.append("login: 1-64 latin letters, digits, _ . @ -")
    if not isinstance(data.get("full_name"), str) or not data["full_name"].strip():
        errors.append("full_name: required")
    if not isinstance(data.get("phones", []), list):
        errors.append("phones: a list")
    return errors


def _check_address(data) -> list[str]:
    if not isinstance(data, dict):
        return ["a JSON object {house_id, flat, access}"]
    errors = [f"{k}: text" for k in ("house_id", "flat") if not isinstance(data.get(k), str)]
    access = data.get("access")
    if not isinstance(access, dict) or set(access) != set(ACCESS_FIELDS) or \
            not all(isinstance(v, bool) for v in access.values()):
        errors.append(f"access: exactly the booleans {', '.join(ACCESS_FIELDS)}")
    return errors


def _address(key: str, a: dict, as_string: bool = False) -> dict:
    return {"account_id": key if as_string or not key.isdigit() else int(key), **a}


def _level(access: dict) -> str:
    if all(access.values()):
        return "full"
    if access.get("open_key") and not any(v for k, v in access.items() if k not in ("open_key", "open_code")):
        return "limited"
    return "custom"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8096)
    parser.add_argument("--token", default="demo-intercom-key")
    parser.add_argument("--no-demo", action="store_true", help="start without the demo profiles")
    args = parser.parse_args()
    emulator = IntercomEmulator(args.host, args.port, args.token)
    if not args.no_demo:
        emulator.load_demo()
    emulator.start()
    emulator.keep_requests = False
    print(f"«Интерсвязь» emulator on {emulator.url} (profiles: http://{args.host}:{emulator.port}/)", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        emulator.stop()


if __name__ == "__main__":
    main()
