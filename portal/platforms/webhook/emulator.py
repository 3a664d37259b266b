"""A local webhook receiver speaking the protocol of client.py, for tests and ``make run``.

It keeps the latest document per login and can be told to fail on purpose::

    receiver = WebhookReceiver(login="portal", password="secret").start()
    receiver.fail("tariff unknown", status=422, login="user7")   # always, for one login
    receiver.fail("busy", times=2)                               # the next two requests
    receiver.heal()                                              # no more failures
    receiver.down(); receiver.up()                               # refuse connections, then listen again
    receiver.states["user7"]                                     # the last document accepted

Standalone: ``python -m portal.platforms.webhook.emulator --port 8099 [--login L --password P]``.
"""
from __future__ import annotations

import argparse
import base64
import json
import threading

from ..emulation import Answer, EmulatedServer


class WebhookReceiver(EmulatedServer):
    thread_name = "webhook-receiver"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, login: str | None = None,
                 password: str | None = None):
        super().__init__(host, port)
        self._auth = "Basic " + base64.b64encode(f"{login}:{password or ''}".encode()).decode() if login else None
        self.states: dict[str, dict] = {}
        self.requests: list[dict] = []  # every request: login and the status answered

    @property
    def url(self) -> str:
        return f"{self.base_url}/hook"

    def handle(self, method: str, path: str, headers, body: bytes) -> Answer:
        if method != "POST":
            return Answer(405, {"error": "POST only"})
        if self._auth and headers.get("Authorization") != self._auth:
            return Answer(401, {"error": "bad credentials"})
        try:
            document = json.loads(body)
            login = document["login"]
        except (ValueError, KeyError, TypeError):
            return Answer(400, {"error": "a JSON object with a login"})
        failure = self.take_failure(login=login)
        with self._lock:
            status = failure.status if failure else 200
            self.requests.append({"login": login, "status": status})
            if failure:
                return Answer(status, {"error": failure.message})
            self.states[login] = document
        return Answer(200, {"ok": True})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--login")
    parser.add_argument("--password")
    args = parser.parse_args()
    receiver = WebhookReceiver(args.host, args.port, args.login, args.password).start()
    print(f"webhook receiver on {receiver.url} (Ctrl+C to stop)", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        receiver.stop()


if __name__ == "__main__":
    main()
