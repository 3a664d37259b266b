"""The caller's real address behind reverse proxies we trust (``TRUSTED_PROXIES``), and no other.

Without the setting, ``X-Forwarded-For`` is ignored: the address is the TCP peer's, so nobody
can claim an address the upsale allow-list or the login limits would trust. With it, werkzeug's
``ProxyFix`` takes the address (and the scheme) from the forwarded headers, for those proxies
only:

* a number of hops (``1``: one nginx in front): the address that many entries from the end of
  ``X-Forwarded-For``; use it only when every request passes through the proxies, since a
  caller that reaches the app directly would be believed too;
* proxy addresses or networks (``10.0.0.5, 10.1.0.0/16``): forwarded headers are read only on a
  connection from one of them; the caller is the last ``X-Forwarded-For`` entry that is not
  itself one of them.

``X-Forwarded-Proto`` is taken from the nearest proxy; ``X-Forwarded-Host`` and the rest stay
ignored (the proxy passes ``Host`` on).
"""
from __future__ import annotations

import ipaddress
from functools import lru_cache

from werkzeug.middleware.proxy_fix import ProxyFix


def parse(value) -> int | tuple | None:
    """``TRUSTED_PROXIES`` as given (``""``/None, a hop count, or addresses and networks
    separated by commas or spaces) -> None, hops, or a tuple of networks. ValueError names
    what cannot be read."""
    if isinstance(value, bool):
        raise ValueError("TRUSTED_PROXIES: a hop count or proxy addresses, not a flag")
    if value is None or isinstance(value, int):
        return value or None
    if isinstance(value, (list, tuple)):
        value = " ".join(str(v) for v in value)
    parts = str(value).replace(",", " ").split()
    if not parts:
        return None
    if len(parts) == 1 and parts[0].isdigit():
        return int(parts[0]) or None
    networks = []
    for part in parts:
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ValueError(f"TRUSTED_PROXIES: {part!r} is neither a hop count nor an address or network") from None
    return tuple(networks)


def _trusted(addr: str | None, networks: tuple) -> bool:
    try:
        ip = ipaddress.ip_address((addr or "").strip().split("%")[0])
    except ValueError:
        return False
    return any(ip in net for net in networks)


class TrustedProxies:
    """``ProxyFix`` applied to requests that come from one of ``networks``, for as many
    ``X-Forwarded-For`` entries from the end as are themselves those proxies, plus one."""

    def __init__(self, app, networks: tuple):
        self.app, self.networks = app, networks
        # one ProxyFix per hop count, cached per instance (not on the class, which would keep instances alive)
        self._fix = lru_cache(maxsize=8)(self._make_fix)

    def _make_fix(self, hops: int) -> ProxyFix:
        return ProxyFix(self.app, x_for=hops, x_proto=1, x_host=0, x_port=0, x_prefix=0)

    def __call__(self, environ, start_response):
        if not _trusted(environ.get("REMOTE_ADDR"), self.networks):
            return self.app(environ, start_response)
        forwarded = [a.strip() for a in environ.get("HTTP_X_FORWARDED_FOR", "").split(",") if a.strip()]
        hops = 1
        while hops < len(forwarded) and _trusted(forwarded[-hops], self.networks):
            hops += 1
        return self._fix(hops)(environ, start_response)


def trust(wsgi_app, setting):
    """``wsgi_app`` behind the proxies of ``setting`` (what ``parse`` gives); unchanged for None."""
    if not setting:
        return wsgi_app
    if isinstance(setting, int):
        return ProxyFix(wsgi_app, x_for=setting, x_proto=1, x_host=0, x_port=0, x_prefix=0)
    return TrustedProxies(wsgi_app, setting)
