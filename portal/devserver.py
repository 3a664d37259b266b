"""`make run`: the portal, an RQ worker and the scheduler on one machine.

Starts (or attaches to) the embedded Redis when REDIS_URL is not set, hands its address to
the worker and scheduler processes, prints where to log in, and serves the web app until
Ctrl+C, then stops the children. Production runs these pieces separately (README).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys

from werkzeug.serving import run_simple

from . import create_app
from .queue import redis_url_for_children

DEMO_LOGINS = """
  Staff:       admin / admin12345   (also: manager / manager12345, viewer / viewer12345)
  Subscriber:  demo / demo12345     (cabinet; also tvdemo / tvdemo12345: TV bought three ways)
"""


def start_emulators(app) -> list:
    """Start each platform's demo emulator and point its connection there, unless staff
    connected that platform to something else (a connection not marked as the demo's)."""
    from sqlalchemy import select

    from .extensions import db
    from .models import PlatformConnection
    from .platforms import registry
    from .platforms.connections import save_connection

    running = []
    with app.app_context():
        for platform in registry.all_platforms():
            if platform.demo_emulator is None:
                continue
            row = db.session.scalar(select(PlatformConnection).filter_by(kind=platform.name))
            if row is not None and not (row.options or {}).get("demo_emulator"):
                continue
            emu = platform.demo_emulator()
            running.append(emu)
            if row is not None and row.url != emu.url and platform.demo_moved is not None:
                platform.demo_moved(row.url, emu.url)  # its usual port was taken this time
            save_connection(platform.name, url=emu.url, login=emu.login, password=emu.password,
                            options={**emu.options, "demo_emulator": True}, actor="devserver")
            db.session.commit()
            print(f"  {platform.title} emulator: {emu.url}", flush=True)
    return running


def portal_port(configured: int | None) -> int:
    """PORT when set (``configured``, from config.load); else 5000, or a free port when another
    program (another checkout's `make run`) holds 5000. The demo emulators are told it (the
    «Смотрёшка» emulator calls the portal back), so it is settled first."""
    if configured:
        return configured
    import socket

    for candidate in (5000, 0):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return probe.getsockname()[1]
    return 5000


def main() -> None:
    app = create_app()
    port = app.config["PORT"] = portal_port(app.config["PORT"])
    emulators = start_emulators(app)
    with app.app_context():  # ЮKassa (online payment from the cabinet): its emulator and payment page
        from .payments.yookassa import demo as yookassa_demo

        yookassa_emu = yookassa_demo.start(f"http://127.0.0.1:{port}")
        if yookassa_emu is not None:
            emulators.append(yookassa_emu)
            print(f"  ЮKassa emulator: {yookassa_emu.api_url}", flush=True)
    with app.app_context():  # notifications: a mail catcher, the SMS gateway and Telegram emulators
        from .notifications import demo as notifications_demo

        for title, emu, inbox in notifications_demo.start():
            emulators.append(emu)
            print(f"  {title}: {inbox}", flush=True)
    with app.app_context():
        # the worker and the scheduler read their settings through config.load as well:
        # hand them this environment plus what was settled here
        env = {**os.environ, "PORT": str(port), "REDIS_URL": redis_url_for_children()}
    children = [
        subprocess.Popen([sys.executable, "-m", "jobs.worker"], env=env),
        subprocess.Popen([sys.executable, "-m", "jobs.scheduler"], env=env),
    ]

    def stop(*_):
        for emu in emulators:
            emu.stop()
        for child in children:
            child.terminate()
        for child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()

    signal.signal(signal.SIGTERM, lambda *_: (stop(), sys.exit(0)))
    print(f"\n  Portal: http://127.0.0.1:{port}/login\n{DEMO_LOGINS}", flush=True)
    try:
        run_simple("127.0.0.1", port, app, threaded=True, use_reloader=False)
    finally:
        stop()


if __name__ == "__main__":
    main()
