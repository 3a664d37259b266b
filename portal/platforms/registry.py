"""The platform registry: what an integration plugs in.

A platform is a package ``portal/platforms/<name>/`` that registers itself on import:

* ``sync.desired_state(account) -> dict | None``: the one rule mapping billing data to the
  state the account must have on the platform (JSON-friendly; None: must not exist there).
  Called only for accounts that are on the platform (see ``outbox.on_platform``).
* ``client.<X>Client(connection)``: the wire protocol, built from a
  ``connections.Connection`` (URL, credentials, options, timeout); HTTP goes through
  ``portal.platforms.http.HttpClient`` so that every call is audited.
* ``sync.reconcile(client, login, desired, sync) -> dict | None``: read the actual state,
  apply the difference, return the actual state afterwards; raise ``PlatformError`` with the
  platform's own error text when it refuses. ``sync`` (a ``SyncPass``) says why the pass runs
  and what the platform confirmed at the last successful pass: staff's "sync now" and the
  scheduled reconcile always reach this call (see ``skip_unchanged``).
* ``emulator.py``: a local stand-in speaking the same protocol, for tests and ``make run``.

Optional hooks (keyword fields of ``Platform``), so that a platform plugs into the shared
pieces without editing them:

* ``demo_emulator() -> DemoEmulator``: start the emulator with demo data for ``make run``
  (``portal/devserver.py`` calls it and points the platform's connection at it);
* ``demo_load()``: add the platform's demo billing data (``flask demo load`` calls it after
  the base data, in the same transaction);
* ``admin_endpoint``: the platform's admin page, linked in the sidebar under "Platforms";
* ``cabinet_template``: a template included on the cabinet's home page (context:
  ``subscriber``, ``contracts``), e.g. TV subscriptions or hosting orders;
* ``account_template``: a panel included on the staff account page (context: ``a``, the
  Account; it draws nothing for an account not on the platform);
* ``check_endpoint``: a POST endpoint that starts the connection check (a job) and answers
  with a fragment that polls until the verdict; the connection page shows a "Check" button;
* ``reconcile_batch(client, items) -> dict``: reconcile many accounts in one job (the nightly
  full reconcile hands them over in batches, see ``reconcile.reconcile_accounts``), e.g. one
  read of a platform object that several accounts share. ``items``: ``[(account_id, login,
  desired)]``; answer ``{account_id: (actual, error, calls)}`` with the error text (None: ok)
  and the calls (``http.recording()``) made for that account. Without it, one job per account.
  A batch is always the scheduled reconcile (mode ``scheduled``): the hook reads the platform.
* ``skip_unchanged``: an ordinary change whose desired state equals the one of the last
  successful pass is not sent to the platform (its state stays what that pass confirmed), e.g.
  a change of the internet tariff on an account with TV. Never for "sync now" or the scheduled
  reconcile: those read the platform, whose side may have changed meanwhile.
* ``apply_platform_changes(account_id, actual, sync)``: after a successful pass, in the job's
  recording transaction (no network call there), take into billing what ``reconcile`` found
  changed on the platform's side and left there (it lists it in ``actual``), with billing's own
  functions; their outbox rows start the next pass. Not called for ``reconcile_batch`` passes.
* ``check_change(account, tariff=None, service=None) -> dict``: billing asks before it gives
  the account this tariff or assigns it this service (``register`` hands it to
  ``portal.billing.hooks``, the one way billing asks the platforms: billing never imports
  them); answer field errors (``{"tariff_id": "..."}``) for a change the platform cannot
  carry, ``{}`` otherwise (also for an account not on the platform). It reads what billing
  knows of the platform (no network call: it runs in a web request).

A platform's periodic jobs are declared in ``jobs/schedules.py`` (platforms never import
``jobs``). The generic machinery (outbox, retries, audit, sync state) is in
``portal/billing/outbox.py`` (the write side: billing records what changed),
``outbox.py`` (handing it to RQ, the sweep) and ``reconcile.py``; an integration never
touches the database or RQ.
"""
from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..billing import hooks

_PLATFORMS: dict[str, Platform] = {}
_loaded = False


@dataclass(frozen=True)
class Platform:
    name: str
    title: str
    desired_state: Callable[[Any], dict | None]
    client: Callable[[Any], Any]
    reconcile: Callable[[Any, str, dict | None, SyncPass], dict | None]
    demo_emulator: Callable[[], DemoEmulator] | None = None
    demo_load: Callable[[], None] | None = None
    # ``make run``: the demo emulator came up on another URL than last time (its usual port was
    # taken): what billing stored with the old URL follows it (old URL, new URL)
    demo_moved: Callable[[str, str], None] | None = None
    admin_endpoint: str | None = None
    cabinet_template: str | None = None
    account_template: str | None = None
    check_endpoint: str | None = None
    reconcile_batch: Callable[[Any, list[tuple[int, str, dict | None]]], dict] | None = None
    skip_unchanged: bool = False
    apply_platform_changes: Callable[[int, dict, SyncPass], None] | None = None
    check_change: Callable[..., dict] | None = None


@dataclass(frozen=True)
class SyncPass:
    """Why a reconcile pass runs, and what the platform confirmed at the last successful one.

    ``mode``: ``manual`` (staff's "sync now", a retry staff asked for: billing's state is
    pushed whatever changed on the platform), ``scheduled`` (the full reconcile, a platform's
    scheduled re-sync) or ``change`` (billing changed). ``last``: the sync state's actual
    state of the last successful pass (None: never synced)."""
    mode: str = "change"
    last: dict | None = None


@dataclass
class DemoEmulator:
    """A running emulator for ``make run``: where it listens and how the portal logs in."""
    url: str
    login: str | None = None
    password: str | None = None
    options: dict = field(default_factory=dict)
    stop: Callable[[], None] = lambda: None


def register(platform: Platform) -> Platform:
    _PLATFORMS[platform.name] = platform
    hooks.register(platform.name, check_change=platform.check_change)  # what billing may ask of it
    return platform


def get(name: str) -> Platform:
    load_builtin()
    return _PLATFORMS[name]


def known_platforms() -> list[str]:
    load_builtin()
    return sorted(_PLATFORMS)


def all_platforms() -> list[Platform]:
    load_builtin()
    return [_PLATFORMS[n] for n in sorted(_PLATFORMS)]


def load_builtin() -> None:
    """Import every platform package (each subpackage of portal.platforms) once; each
    registers itself on import."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for info in pkgutil.iter_modules(_package_path()):
        if info.ispkg:
            importlib.import_module(f"{__package__}.{info.name}")


def _package_path():
    return importlib.import_module(__package__).__path__
