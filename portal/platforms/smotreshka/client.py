"""The «Смотрёшка» operator API v2 and account-state v3 (billing -> platform), as in
/work/shared/protocols/smotreshka.md section 1.

* the connection URL is the base without ``/v2``; the platform knows us by our source address
  (no credentials are sent: the connection's login/password are for the upsale callbacks);
* JSON bodies everywhere (the platform also takes forms);
* ``{}`` with HTTP 200 from the subscription toggle means "no such subscription": an error;
* 403 means "not our address" or "this account is archived"; ``account()`` returns None for
  an archived or unknown account so the caller can re-create it (create is create-or-get).
"""
from __future__ import annotations

import time

from ..http import HttpClient, PlatformError
from .settings import from_options


class SmotreshkaClient(HttpClient):
    def __init__(self, connection):
        super().__init__(connection)
        self.session.auth = None  # the v2 API authenticates by address; our Basic pair is for callbacks
        self.settings = from_options(connection.options)

    # -- helpers ------------------------------------------------------------------------------

    def _json(self, response):
        try:
            return response.json()
        except ValueError:
            raise PlatformError(f"HTTP {response.status_code}: not JSON: {response.text[:200]}") from None

    def _ref(self, platform_id: str | None, username: str) -> str:
        """How the paths name an account (the operator-panel setting, notes 1.2)."""
        return username if self.settings.id_mode == "username" or not platform_id else platform_id

    # -- catalog and accounts -----------------------------------------------------------------

    def subscriptions_catalog(self) -> list[dict]:
        data = self._json(self.request("GET", "/v2/subscriptions"))
        if isinstance(data, dict):  # tolerate a wrapped list
            data = data.get("subscriptions") or data.get("items") or []
        return [{"id": str(s.get("id")), "name": str(s.get("name") or s.get("id")),
                 "channels": len(s.get("channels") or [])} for s in data if isinstance(s, dict) and s.get("id")]

    def accounts_page(self, page: int, page_size: int) -> tuple[list[dict], int]:
        data = self._json(self.request("GET", f"/v2/accounts?page_size={page_size}&page_num={page}"))
        pages = int((data.get("pagination") or {}).get("pages") or 1)
        return list(data.get("accounts") or []), pages

    def all_accounts(self) -> list[dict]:
        out, page = [], 0
        while True:
            items, pages = self.accounts_page(page, self.settings.page_size)
            out += items
            page += 1
            if page >= pages or not items:
                return out

    def account(self, ref: str) -> dict | None:
        """The account, or None when it is archived (403) or unknown (404)."""
        try:
            data = self._json(self.request("GET", f"/v2/accounts/{ref}"))
        except PlatformError as e:
            if str(e).startswith(("HTTP 403", "HTTP 404")):
                return None
            raise
        if isinstance(data, dict) and isinstance(data.get("accounts"), list):  # both shapes, notes 1.4
            data = data["accounts"][0] if data["accounts"] else None
        return data

    def create(self, username: str, email: str, purchases: list[str], info: dict) -> str:
        """Create-or-get: our own (or our archived) username answers ``created: false`` with its id."""
        data = self._json(self.request("POST", "/v2/accounts", json={
            "username": username, "email": email.lower(), "purchases": purchases, "info": info}))
        if not data.get("id"):
            raise PlatformError(f"create {username}: no id in the answer {data}")
        return str(data["id"])

    def archive(self, ref: str) -> None:
        try:
            self.request("DELETE", f"/v2/accounts/{ref}")
        except PlatformError as e:
            if not str(e).startswith("HTTP 403"):  # archived already
                raise

    def subscriptions(self, ref: str) -> set[str]:
        data = self._json(self.request("GET", f"/v2/accounts/{ref}/subscriptions"))
        return {str(s["id"]) for s in data if isinstance(s, dict) and s.get("id") is not None}

    def toggle(self, ref: str, subscription_id: str, valid: bool) -> None:
        data = self._json(self.request("POST", f"/v2/accounts/{ref}/subscriptions",
                                       json={"id": subscription_id, "valid": valid}))
        if not data or "valid" not in data:
            raise PlatformError(f"subscription {subscription_id!r} is unknown to the platform (answer {data})")
        if str(data["valid"]).lower() != str(valid).lower():
            raise PlatformError(f"subscription {subscription_id!r}: asked valid={valid}, got {data}")

    def account_state(self, ref: str, state: dict, delayed: bool = False) -> None:
        base = self.settings.account_state_url.rstrip("/") if self.settings.account_state_url else ""
        body = {**state, "stateTimestamp": int(time.time() * 1000)}
        path = f"/accounts/v3/{ref}/account-state" + ("?delayed=true" if delayed else "")
        if base:
            saved, self.base_url = self.base_url, base
            try:
                self.request("POST", path, json=body)
            finally:
                self.base_url = saved
        else:
            self.request("POST", path, json=body)
