"""The Stalker (Ministra) REST API v1 client (../shared/protocols/stalker.md).

``<base>/<resource>[/<id,id,...>]`` under the connection URL (which ends in
``/stalker_portal/api/``), HTTP Basic auth, every body form-encoded (arrays as ``key[]``),
lower-case resource names. Stalker answers HTTP 200 with ``{"status": "ERROR", "error": ...}``
for refusals, 401 with a JSON body for bad credentials and a plain-text 404 ``API not
enabled`` when its API is off; each becomes a typed ``StalkerError`` carrying Stalker's text.

Resources that act on every user when no identifier is given (stb, itv_subscription,
send_event, stb_msg, account_subscription, and writes on accounts) refuse here, before any
call, when the identifier is missing.
"""
from __future__ import annotations

import re
from urllib.parse import quote

from ..http import HttpClient, PlatformError


class StalkerError(PlatformError):
    """Stalker refused; ``str(e)`` is its own error text."""


class Unauthorized(StalkerError):
    """401: the API login or password is wrong."""


class ApiDisabled(StalkerError):
    """404 ``API not enabled``: ``enable_api`` is off in Stalker's custom.ini."""


class AccountNotFound(StalkerError):
    pass


class LoginInUse(StalkerError):
    pass


class MacInUse(StalkerError):
    pass


class NotValidMac(StalkerError):
    pass


class StbNotFound(StalkerError):
    pass


class IdentifierRequired(StalkerError):
    """Refused before the call: without an identifier it would act on every user."""


ERRORS = {
    "Account not found": AccountNotFound,
    "One or more identifiers are incorrect": AccountNotFound,
    "Login already in use": LoginInUse,
    "MAC address already in use": MacInUse,
    "Stb already exists": MacInUse,
    "Not valid mac address": NotValidMac,
    "STB not found": StbNotFound,
    "Empty stb list": StbNotFound,
    "Identifier required": IdentifierRequired,
}

METHODS = ("GET", "POST", "PUT", "DELETE")
RESOURCE_RE = re.compile(r"^[a-z_]{1,40}$")
MAC_RE = re.compile(r"^([0-9A-F]{2}:){5}[0-9A-F]{2}$")


def normalise_mac(value: str) -> str | None:
    """Stalker's MAC rule: upper case; 12 hex digits get colons; must end as 17 characters."""
    mac = (value or "").strip().upper().replace("-", ":")
    if re.fullmatch(r"[0-9A-F]{12}", mac):
        mac = ":".join(mac[i:i + 2] for i in range(0, 12, 2))
    return mac if MAC_RE.match(mac) else None


def form(data: dict | None) -> list[tuple[str, str]]:
    """A dict as Stalker's parse_str wants it: lists become repeated ``key[]`` pairs."""
    pairs = []
    for key, value in (data or {}).items():
        if value is None:
            continue
        if isinstance(value, (list, tuple, set)):
            pairs += [(f"{key}[]", str(v)) for v in value]
        else:
            pairs.append((key, str(value)))
    return pairs


class StalkerClient(HttpClient):

    # -- the envelope -------------------------------------------------------------------------

    def call(self, method: str, resource: str, ids=None, data: dict | None = None):
        """One API call; returns ``results`` or raises a ``StalkerError``."""
        method = method.upper()
        if method not in METHODS:
            raise StalkerError(f"Not supported method {method}")
        resource = resource.strip().strip("/").lower()
        if not RESOURCE_RE.match(resource):
            raise StalkerError(f'Resource "{resource}" does not exist')
        path = "/" + resource
        if ids:
            ids = [ids] if isinstance(ids, (str, int)) else list(ids)
            path += "/" + ",".join(quote(str(i), safe=":") for i in ids)
        body = form(data) if data else None
        headers = {"Content-Type": "application/x-www-form-urlencoded"} if body is not None else {}
        try:
            response = self.request(method, path, data=body, headers=headers)
        except PlatformError as e:
            text = str(e)
            if text.startswith("HTTP 401"):
                raise Unauthorized("401 Unauthorized request") from None
            if text.startswith("HTTP 404") and "API not enabled" in text:
                raise ApiDisabled("API not enabled") from None
            raise
        try:
            answer = response.json()
        except ValueError:
            raise StalkerError(f"not a JSON answer: {response.text.strip()[:200]}") from None
        if not isinstance(answer, dict) or "status" not in answer:
            raise StalkerError("not a Stalker API answer")
        if answer["status"] != "OK":
            message = str(answer.get("error") or "unknown error")
            raise ERRORS.get(message, StalkerError)(message)
        return answer.get("results")

    @staticmethod
    def _need(ident, what: str = "identifier"):
        if ident is None or str(ident).strip() == "":
            raise IdentifierRequired(f"{what} required: without it Stalker would act on every user")
        return str(ident).strip()

    @staticmethod
    def _rows(results) -> list[dict]:
        if results is None or results is False:
            return []
        return results if isinstance(results, list) else [results]

    # -- accounts (the resource a billing uses) ----------------------------------------------

    def accounts(self, ids=None) -> list[dict]:
        """All accounts, or those of the account numbers / MACs given (always a list)."""
        return self._rows(self.call("GET", "accounts", ids))

    def account(self, ident) -> list[dict]:
        """The users of one account number or MAC; [] when Stalker has none."""
        try:
            return self.accounts([self._need(ident)])
        except AccountNotFound:
            return []

    def user(self, login: str) -> dict | None:
        """The user with this login (``users`` takes a login), or None."""
        try:
            rows = self._rows(self.call("GET", "users", [self._need(login, "login")]))
        except AccountNotFound:
            return None
        return rows[0] if rows else None

    def create_account(self, fields: dict) -> bool:
        if not fields.get("login"):
            raise StalkerError("Login required")
        return bool(self.call("POST", "accounts", None, fields))

    def update_account(self, ident, fields: dict) -> bool:
        return bool(self.call("PUT", "accounts", [self._need(ident)], fields))

    def delete_account(self, ident) -> bool:
        """Delete (every user of that account number, or the one of that MAC); an account
        Stalker does not have counts as deleted."""
        try:
            return bool(self.call("DELETE", "accounts", [self._need(ident)]))
        except AccountNotFound:
            return True

    # -- one user, addressed as the sync found it (see sync.address) ----------------------------

    def update_at(self, address: tuple[str, str], fields: dict) -> bool:
        """PUT onto one user: ``("users", login)`` or ``("accounts", MAC or account number)``."""
        resource, ident = address
        return bool(self.call("PUT", resource, [self._need(ident)], fields))

    def delete_at(self, address: tuple[str, str]) -> bool:
        """DELETE one user; a user Stalker does not have counts as deleted."""
        resource, ident = address
        try:
            return bool(self.call("DELETE", resource, [self._need(ident)]))
        except AccountNotFound:
            return True

    def change_subscription(self, ident, subscribe: list[str], unsubscribe: list[str]):
        """Switch optional packages on and off (external ids). Stalker answers ``false`` when
        it changed nothing, also for a package that is not optional in the user's plan: judge
        by reading the account back, not by this answer."""
        return self.call("PUT", "account_subscription", [self._need(ident)],
                         {"subscribed": subscribe or None, "unsubscribed": unsubscribe or None})

    # -- devices, channels, subscriptions ----------------------------------------------------

    def stbs(self, ids=None) -> list[dict]:
        return self._rows(self.call("GET", "stb", ids))

    def channels(self, ids=None) -> list[dict]:
        return self._rows(self.call("GET", "itv", ids))

    def subscriptions(self, ids=None) -> list[dict]:
        return self._rows(self.call("GET", "itv_subscription", ids))

    def tariffs(self) -> list[dict]:
        return self._rows(self.call("GET", "tariffs"))

    def tariff(self, plan_id) -> dict | None:
        """One plan by Stalker's internal id (not the external_id), or None."""
        result = self.call("GET", "tariffs", [self._need(plan_id, "plan id")])
        return result or None

    def packages(self, ids=None) -> list[dict]:
        return self._rows(self.call("GET", "services_package", ids))

    def account_subscription(self, ident) -> dict:
        rows = self._rows(self.call("GET", "account_subscription", [self._need(ident)]))
        return rows[0] if rows else {"subscribed": [], "subscribed_id": []}

    def set_account_subscription(self, ident, subscribed: list[str]) -> bool:
        """Set the optional packages (external ids): subscribes to these, unsubscribes the rest."""
        return bool(self.call("POST", "account_subscription", [self._need(ident)], {"subscribed": subscribed}))

    def clear_account_subscription(self, ident) -> bool:
        return bool(self.call("DELETE", "account_subscription", [self._need(ident)]))

    def send_event(self, ident, event: str, **fields) -> bool:
        return bool(self.call("POST", "send_event", [self._need(ident)], {"event": event, **fields}))

    # -- the raw console ---------------------------------------------------------------------

    def raw(self, method: str, resource: str, params: dict | None = None):
        """A free request for the admin console: ``resource`` may carry identifiers
        (``accounts/17``). Writes to broadcast resources still need an identifier."""
        parts = (resource or "").strip().strip("/").split("/")
        name, ids = parts[0].lower(), (parts[1] if len(parts) > 1 and parts[1] else None)
        broadcast = ("stb", "itv_subscription", "send_event", "stb_msg", "account_subscription", "accounts",
                     "users", "stb_modules", "stb_auth")
        if method.upper() != "GET" and name in broadcast and not ids and not (name in ("accounts", "stb")
                                                                            and method.upper() == "POST"):
            raise IdentifierRequired(f"{name}: an identifier is required for {method.upper()} "
                                     "(without it Stalker would act on every user)")
        return self.call(method, name, ids.split(",") if ids else None, params)
