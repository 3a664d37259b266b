"""The «Интерсвязь» operator API as we know it: the draft contract of
../shared/protocols/intercom.md section 5.4 (the vendor's real API is not public; swapping to it
changes only this module). JSON in and out; ``Authorization: Bearer <api key>`` (the key is
the connection's password, write-only and never logged); errors ``{"error": code,
"message": text}`` with an HTTP status.

* ``GET /profiles/{login}`` → 200 ``{login, full_name, phones[], addresses: [{account_id,
  house_id, flat, access}]}`` | 404
* ``POST /profiles`` ``{login, full_name, phones[]}`` → 201 | 409 (exists: we link it)
* ``PATCH /profiles/{login}`` ``{full_name, phones[]}`` → 200 | 404 | 422 (our extension of the
  draft: the card's changes; to confirm with the vendor)
* ``PUT /profiles/{login}/addresses/{account_id}`` ``{house_id, flat, access}`` → 200 | 201
* ``DELETE /profiles/{login}/addresses/{account_id}`` → 204 | 404 (gone already: fine)
* ``DELETE /profiles/{login}`` → 204 | 404

``access`` is the access profile of section 5.2: nine booleans (``ACCESS_FIELDS``). An
address's ``account_id`` may come as a number or a string (sync.account_key reads both).
"""
from __future__ import annotations

from urllib.parse import quote

import requests

from ..http import HttpClient, PlatformError

ACCESS_FIELDS = ("open_key", "open_code", "open_app", "open_face", "calls_analog", "calls_sip_app",
                 "calls_landline", "video_live", "video_archive")
CHECK_LOGIN = "portal-connection-check"  # a login nobody has: 404 means "reachable, key accepted"


class IntercomClient(HttpClient):
    """One connection to the platform: URL, the API key (the connection's password)."""

    def __init__(self, connection):
        super().__init__(connection)
        self.session.auth = None  # the key goes as a bearer token, not as Basic credentials
        # the environment's proxy and CA settings, read once here rather than on every call
        # (a full reconcile makes thousands); no .netrc: the key is the only credential
        env = self.session.merge_environment_settings(self.base_url, {}, None, None, None)
        self.session.trust_env = False
        self.session.proxies.update(env["proxies"])
        self.session.verify = env["verify"]
        if connection.password:
            self.session.headers["Authorization"] = f"Bearer {connection.password}"
            self._secrets.append(f"Bearer {connection.password}")
        self.options = dict(connection.options or {})

    def call(self, method: str, path: str, *, expect: tuple[int, ...] = (), **kwargs) -> requests.Response:
        """One audited call; a status in ``expect`` is an answer, any other error status raises
        PlatformError with the platform's message."""
        return self.request(method, path, expect=expect, describe=_message, **kwargs)

    # -- the contract -------------------------------------------------------------------------------

    def get_profile(self, login: str) -> dict | None:
        r = self.call("GET", f"/profiles/{_seg(login)}", expect=(404,))
        return None if r.status_code == 404 else _json(r)

    def create_profile(self, login: str, full_name: str, phones: list[str]) -> bool:
        """Create the profile; False when it exists already (then we link it)."""
        r = self.call("POST", "/profiles", json={"login": login, "full_name": full_name, "phones": phones},
                      expect=(409,))
        return r.status_code != 409

    def update_profile(self, login: str, full_name: str, phones: list[str]) -> None:
        """The card's name and phones onto the profile (both sent: the profile then has exactly these)."""
        self.call("PATCH", f"/profiles/{_seg(login)}", json={"full_name": full_name, "phones": phones})

    def upsert_address(self, login: str, account_id: int, house_id: str, flat: str, access: dict) -> None:
        self.call("PUT", f"/profiles/{_seg(login)}/addresses/{account_id}",
                  json={"house_id": house_id, "flat": flat, "access": access})

    def remove_address(self, login: str, account_id: int) -> bool:
        """Remove the address; False when it was not there (already gone: fine)."""
        return self.call("DELETE", f"/profiles/{_seg(login)}/addresses/{account_id}",
                         expect=(404,)).status_code != 404

    def delete_profile(self, login: str) -> bool:
        return self.call("DELETE", f"/profiles/{_seg(login)}", expect=(404,)).status_code != 404

    def check(self) -> dict:
        """Reachable? Key accepted? Read a profile nobody has: 404 or 200 says yes to both,
        401/403 says the key is refused, no answer says unreachable. Never raises."""
        try:
            r = self.call("GET", f"/profiles/{CHECK_LOGIN}", expect=(401, 403, 404))
        except PlatformError as e:
            return {"reachable": False, "token_ok": None, "error": str(e)}
        if r.status_code in (401, 403):
            return {"reachable": True, "token_ok": False, "error": f"HTTP {r.status_code}: {_message(r)}"}
        return {"reachable": True, "token_ok": True, "error": None}


def account_key(value) -> int | None:
    """An address's ``account_id`` as the platform sent it (``42`` or ``"42"``) as our account
    id; None when it cannot be one (another system's key, a bool, a float)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _seg(value: str) -> str:
    return quote(str(value), safe="")


def _json(r: requests.Response):
    try:
        return r.json()
    except ValueError:
        raise PlatformError(f"HTTP {r.status_code}: not JSON: {r.text.strip()[:200]}") from None


def _message(r: requests.Response) -> str:
    try:
        body = r.json()
    except ValueError:
        return r.text.strip()[:1000]
    if isinstance(body, dict) and (body.get("message") or body.get("error")):
        return str(body.get("message") or body.get("error"))[:1000]
    return r.text.strip()[:1000]
