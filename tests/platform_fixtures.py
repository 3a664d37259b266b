"""Fixtures for platform tests: the webhook receiver (emulator) with a stored connection to
it, the real worker and scheduler as subprocesses, and bounded polling.

Its fixtures are loaded for every test by conftest's pytest_plugins; import the helpers.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.models import Account, OutboxEvent, SyncState
from portal.platforms.connections import save_connection
from portal.platforms.webhook.emulator import WebhookReceiver
from portal.platforms.webhook.sync import desired_state
from tests.helpers import RedisServer

ROOT = Path(__file__).resolve().parent.parent
HOOK_LOGIN, HOOK_PASSWORD = "portal", "hook-Pa55word"


@pytest.fixture
def receiver():
    """A webhook receiver on 127.0.0.1 that wants the portal's Basic credentials."""
    r = WebhookReceiver(login=HOOK_LOGIN, password=HOOK_PASSWORD).start()
    yield r
    r.stop()


@pytest.fixture
def webhook(ctx, receiver):
    """The receiver, with the portal's connection to it stored (password encrypted)."""
    save_connection("webhook", url=receiver.url, login=HOOK_LOGIN, password=HOOK_PASSWORD, actor="test")
    db.session.commit()
    return receiver


class _Processes:
    """Subprocesses started by a test; all stopped (and their logs shown) at its end."""

    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.started: list[tuple[subprocess.Popen, Path]] = []

    def start(self, module: str, **env) -> subprocess.Popen:
        log = self.tmp_path / f"{module}.{len(self.started)}.log"
        proc = subprocess.Popen(
            [sys.executable, "-m", module], cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT,
            env={**os.environ, **{k: str(v) for k, v in env.items()}},
        )
        self.started.append((proc, log))
        return proc

    def stop_all(self) -> None:
        db.session.rollback()  # hold no lock a job's last write could wait for
        for proc, _log in self.started:
            proc.terminate()
        for proc, log in self.started:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            print(f"--- {log.name} (exit {proc.returncode}) ---\n{log.read_text()[-5000:]}")


@pytest.fixture
def processes(ctx, tmp_path):
    """Start ``python -m jobs.worker`` / ``jobs.scheduler`` with extra environment:
    ``processes.start("jobs.worker", SYNC_MAX_ATTEMPTS=3)``."""
    procs = _Processes(tmp_path)
    yield procs
    procs.stop_all()


@pytest.fixture
def own_redis(app, tmp_path):
    """The app (and the processes a test starts with ``REDIS_URL=own_redis.url``) on a Redis
    server of the test's own, which the test may ``crash()`` and ``start()`` again."""
    server = RedisServer(tmp_path).start()
    saved = app.config["REDIS_URL"]
    app.config["REDIS_URL"] = server.url
    try:
        yield server
    finally:
        app.config["REDIS_URL"] = saved
        if server.proc.poll() is None:
            server.crash()


def timeout_scale() -> float:
    """How much longer than on a quiet machine a bound on waiting should be: TEST_TIMEOUT_SCALE
    when set, else the run queue per CPU (1-minute load average / CPUs) when it is over 1, up
    to 10. A wait's bound only says when to give up on a result (no test asserts speed), and
    under load a worker subprocess alone can take over 30 s to start: measured at a load
    average of 14 on 2 CPUs, which failed BILLmanager tests that pass on a quiet machine."""
    if os.environ.get("TEST_TIMEOUT_SCALE"):
        return max(1.0, float(os.environ["TEST_TIMEOUT_SCALE"]))
    try:
        per_cpu = os.getloadavg()[0] / (os.cpu_count() or 1)
    except OSError:  # no load average on this system
        return 1.0
    return min(10.0, max(1.0, per_cpu))


def wait_for(check, timeout: float = 30, what: str = "the condition"):
    """Poll ``check()`` (each time in a fresh transaction, released at once, so that the
    worker can write) until it returns something truthy; fail after ``timeout`` seconds
    (times timeout_scale(): longer on a loaded machine)."""
    timeout *= timeout_scale()
    deadline = time.monotonic() + timeout
    while True:
        db.session.rollback()
        try:
            result = check()
        finally:
            db.session.rollback()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


@contextmanager
def redis_down(app):
    """Point the app at a Redis that is not there (a closed port) for the block."""
    saved = app.config["REDIS_URL"]
    app.config["REDIS_URL"] = "redis://127.0.0.1:9/0"
    try:
        yield
    finally:
        app.config["REDIS_URL"] = saved


def state_of(account_id: int) -> SyncState | None:
    """The webhook platform's sync state of an account."""
    return db.session.scalar(select(SyncState).filter_by(account_id=account_id, platform="webhook"))


def converged(receiver, account_ids) -> bool:
    """Every account is ``ok`` and the receiver holds the document billing wants now."""
    for account_id in account_ids:
        st = state_of(account_id)
        account = db.session.get(Account, account_id)
        if st is None or st.state != "ok" or receiver.states.get(account.login) != desired_state(account):
            return False
    return True


def unprocessed(account_ids) -> list[OutboxEvent]:
    """The outbox events of these accounts no worker has processed yet."""
    return list(db.session.scalars(select(OutboxEvent).where(
        OutboxEvent.account_id.in_(account_ids), OutboxEvent.processed_at.is_(None))))
