"""The selling BILLmanager's wire protocol (docs: /work/shared/protocols/billmanager.md).

Every call is ``POST <url>`` (the full path to ``billmgr``) with a form body:
``func=<function>&out=json&lang=en&authinfo=<user>:<password>`` plus the function's
parameters. The password therefore never appears in a URL. A seller that refuses authinfo for
client accounts gets a ``func=auth`` session instead (``auth=<id>``), once per client. Answers are ``{"doc": {...}}``;
text nodes come as ``{"$": "value"}`` and are unwrapped here; a list (``doc.elem``) may be an
array, a single object or absent. Errors come with HTTP 200 as ``doc.error`` with ``$type``
(``auth``, ``access``, ``value`` with ``$object``, ``missed``, ...) and ``msg``.

The transport is ``portal.platforms.http.HttpClient`` (every call recorded for the audit log,
secrets redacted); this module adds the protocol: the envelope, the typed errors, the session.

Reads may be retried; calls that move money (``order``, ``prolong``) are made once and
never retried here: a caller that sees ``BillmgrTransportError`` on them must find out what
happened on the seller before doing anything else (orders.py does).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from types import SimpleNamespace

import requests
from urllib3.exceptions import NewConnectionError

from ..http import HttpClient, PlatformError, public_url

ITEM_STATUS = {1: "ordered", 2: "active", 3: "suspended", 4: "deleted", 5: "in progress"}


class BillmgrError(PlatformError):
    """The seller refused; ``type`` is its ``$type``, ``object`` the field concerned."""

    def __init__(self, message: str, type: str = "", object: str | None = None):
        super().__init__(message)
        self.type, self.object = type, object


class BillmgrAuthError(BillmgrError):
    pass


class BillmgrAccessError(BillmgrError):
    pass


class BillmgrValueError(BillmgrError):
    pass


class BillmgrNotFound(BillmgrError):
    pass


class BillmgrTransportError(PlatformError):
    """No usable answer: timeout, refused connection, HTTP error, not JSON (e.g. a DDoS
    guard's HTML page). For a money-moving call the outcome is unknown."""


class BillmgrNotSent(BillmgrTransportError):
    """The request never reached the seller (connection refused, no route, DNS, connect
    timeout): even a money-moving call did nothing there, so it may be sent again."""


def _never_sent(e: requests.RequestException) -> bool:
    if isinstance(e, requests.ConnectTimeout):
        return True
    reason = getattr(e.args[0], "reason", None) if isinstance(e, requests.ConnectionError) and e.args else None
    # refused or unresolvable; a connection dropped after the request went out is not this
    return isinstance(reason, NewConnectionError)


ERRORS = {"auth": BillmgrAuthError, "access": BillmgrAccessError, "value": BillmgrValueError,
          "missed": BillmgrNotFound}


def unwrap(node):
    """``{"$": "x"}`` -> ``"x"`` recursively; other keys kept (``$id`` etc.)."""
    if isinstance(node, dict):
        if set(node) == {"$"}:
            return node["$"]
        return {k: unwrap(v) for k, v in node.items()}
    if isinstance(node, list):
        return [unwrap(v) for v in node]
    return node


def as_list(value) -> list:
    """``elem`` and friends: an array, one object, or absent."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def normalise_url(url: str) -> str:
    """The handler URL is the full path to billmgr; a trailing slash is dropped and
    ``/billmgr`` is never appended twice."""
    url = (url or "").strip().rstrip("/")
    if not re.search(r"/billmgr$", url):
        url += "/billmgr"
    return url


def parse_money(text) -> tuple[Decimal | None, str | None]:
    """``"123.45 RUB"`` / ``"123.45"`` / ``123.45`` -> (Decimal, currency)."""
    m = re.match(r"^\s*(-?[\d\s]+(?:[.,]\d+)?)\s*([A-Za-z]{3})?", str(text or ""))
    if not m:
        return None, None
    try:
        return Decimal(m.group(1).replace(" ", "").replace(",", ".")), m.group(2)
    except InvalidOperation:
        return None, None


@dataclass
class BillmgrClient:
    url: str
    username: str
    password: str = field(repr=False)
    timeout: float = 15.0
    order_timeout: float = 30.0
    lang: str = "en"

    def __post_init__(self):
        self.url = normalise_url(self.url)
        # no login on the connection: the credentials go in the form (authinfo), not HTTP auth
        self.http = HttpClient(SimpleNamespace(url=self.url, timeout=self.timeout, login=None, password=self.password))
        self._session: str | None = None  # a func=auth session, when authinfo is refused
        self._login_failed = False

    # -- the one transport ------------------------------------------------------------------

    def call(self, func: str, *, timeout: float | None = None, **params) -> dict:
        """One call with ``authinfo``; if the seller refuses authinfo (``auth``/``access``),
        log in once with ``func=auth`` and repeat it with the session (a refused call did
        nothing, so repeating it is safe even for an order). Later calls use the session and
        log in again once when it has expired."""
        if self._session is None:
            try:
                return self._send(func, {"authinfo": f"{self.username}:{self.password}"}, timeout, params)
            except (BillmgrAuthError, BillmgrAccessError):
                if not self._login():
                    raise
        try:
            return self._send(func, {"auth": self._session}, timeout, params)
        except BillmgrAuthError:  # the session expired (an hour without calls)
            if not self._login():
                raise
            return self._send(func, {"auth": self._session}, timeout, params)

    def _login(self) -> bool:
        """``func=auth``: a session id, or False when the seller refuses that too."""
        if self._login_failed:
            return False
        try:
            doc = self._send("auth", {}, None, {"username": self.username, "password": self.password})
        except BillmgrError:
            self._login_failed = True
            return False
        auth = doc.get("auth")
        sid = auth.get("$id") or auth.get("$") if isinstance(auth, dict) else auth
        if not sid:
            self._login_failed = True
            return False
        self._session = str(sid)
        self.http.add_secret(self._session)
        return True

    def _send(self, func: str, credentials: dict, timeout: float | None, params: dict) -> dict:
        """One POST; returns ``doc`` unwrapped, or raises a typed error."""
        form = {"func": func, "out": "json", "lang": self.lang, **credentials}
        form.update({k: v for k, v in params.items() if v is not None})
        entry = {"func": func}  # this call's record (HttpClient fills in the rest)
        wait = timeout or self.timeout
        response = self.http.request("POST", data=form, timeout=wait, record=entry, fault=self._fault(func, wait))
        try:
            doc = response.json()["doc"]
        except (ValueError, KeyError, TypeError):
            entry["error"] = f"not a BILLmanager JSON answer from {public_url(self.url)}"
            raise BillmgrTransportError(entry["error"]) from None
        doc = unwrap(doc)
        error = doc.get("error") if isinstance(doc, dict) else None
        if error:
            if not isinstance(error, dict):
                error = {"msg": str(error)}
            kind = error.get("$type", "")
            msg = error.get("msg") or kind or "error"
            if isinstance(msg, dict):
                msg = msg.get("$", str(msg))
            entry["error"] = f"{kind}: {msg}"[:300]
            raise ERRORS.get(kind, BillmgrError)(self.http.redact(str(msg)), kind, error.get("$object"))
        return doc

    def _fault(self, func: str, wait: float):
        """This protocol's transport errors (HttpClient's ``fault``): not sent at all (safe to
        send again, even an order), no answer in time, or no usable answer."""
        def fault(call: dict, cause) -> PlatformError:
            if isinstance(cause, requests.Response):
                call["error"] = f"HTTP {cause.status_code} from {public_url(self.url)}"
                return BillmgrTransportError(call["error"])
            if _never_sent(cause):  # checked first: a connect timeout is a Timeout too
                call["error"] = f"not sent: {type(cause).__name__}"
                return BillmgrNotSent(f"{func}: the seller is unreachable ({type(cause).__name__})")
            if isinstance(cause, requests.Timeout):
                call["error"] = f"timeout after {wait}s"
                return BillmgrTransportError(f"{func}: no answer within {wait}s")
            return BillmgrTransportError(f"{func}: {call['error']}")  # (redacted by HttpClient)
        return fault

    # -- reads ------------------------------------------------------------------------------

    def list(self, itemtype: str) -> list[dict]:
        """The account's services of one product type (``func=<type>``)."""
        return as_list(self.call(itemtype).get("elem"))

    def export_pricelists(self, itemtype: str | None = None, pricelist: str | None = None) -> list[dict]:
        doc = self.call("pricelist.export", itemtype=itemtype, pricelist=pricelist)
        return as_list(doc.get("pricelist"))

    def balance(self) -> tuple[Decimal, str | None]:
        """The selling account's balance: ``subaccount``, else ``dashboard.info``."""
        try:
            rows = as_list(self.call("subaccount").get("elem"))
            if rows and rows[0].get("balance") is not None:
                amount, currency = parse_money(rows[0]["balance"])
                if amount is not None:
                    return amount, currency or rows[0].get("currency")
        except (BillmgrAccessError, BillmgrNotFound):
            pass
        rows = as_list(self.call("dashboard.info").get("elem"))
        amount, currency = parse_money(rows[0].get("balance") if rows else None)
        if amount is None:
            raise BillmgrError("the seller did not say the balance", "balance")
        return amount, currency

    # -- money-moving calls: once, never retried -------------------------------------------

    def order(self, itemtype: str, *, pricelist: str, period: int, remoteid: str, datacenter: str | None = None,
              domain: str | None = None, autoprolong: int | None = None) -> dict:
        """``v2.<type>.order.param`` (BILLmanager 6); a seller without it (``missed``: the
        function is unknown, so nothing was ordered) gets the legacy ``<type>.order.param``
        with ``period``."""
        common = dict(timeout=self.order_timeout, pricelist=pricelist, datacenter=datacenter, domain=domain,
                      remoteid=remoteid, autoprolong=str(autoprolong) if autoprolong else None, skipbasket="on",
                      sok="ok")
        try:
            return self.call(f"v2.{itemtype}.order.param", order_period=str(period), **common)
        except BillmgrNotFound as e:
            if e.object not in (None, "func"):
                raise
        return self.call(f"{itemtype}.order.param", period=str(period), **common)

    def prolong(self, elid: str, period: int = 1) -> dict:
        return self.call("service.prolong", timeout=self.order_timeout, elid=elid, period=str(period), sok="ok")

    # -- state changes (idempotent on the seller: asking twice is harmless) ------------------

    def suspend(self, itemtype: str, elid: str) -> dict:
        return self.call(f"{itemtype}.suspend", elid=elid, sok="ok")

    def resume(self, itemtype: str, elid: str) -> dict:
        return self.call(f"{itemtype}.resume", elid=elid, sok="ok")

    def delete(self, itemtype: str, elid: str) -> dict:
        return self.call(f"{itemtype}.delete", elid=elid, sok="ok")
