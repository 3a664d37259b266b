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
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class _Failure:
    message: str
    status: int
    times: int | None  # None: always
    login: str | None  # None: every login


class WebhookReceiver:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, login: str | None = None,
                 password: str | None = None):
        self.host, self.port = host, port
        self._auth = "Basic " + base64.b64encode(f"{login}:{password or ''}".encode()).decode() if login else None
        self.states: dict[str, dict] = {}
        self.requests: list[dict] = []  # every request: login and the status answered
        self._failures: list[_Failure] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/hook"

    # -- control --------------------------------------------------------------------------------

    def start(self) -> "WebhookReceiver":
        """Listen (again on the same port, after ``down``)."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server naming)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, answer = receiver._receive(self.headers.get("Authorization"), body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):  # keep test output quiet
                pass

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, name="webhook-receiver", daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop listening: connections are refused until ``up``."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    up, down = start, stop

    def fail(self, message: str = "emulated failure", status: int = 503, times: int | None = None,
             login: str | None = None) -> None:
        """Answer ``status`` with ``message`` (for one login or all; ``times`` times or always)."""
        with self._lock:
            self._failures.append(_Failure(message, status, times, login))

    def heal(self) -> None:
        with self._lock:
            self._failures.clear()

    # -- protocol -------------------------------------------------------------------------------

    def _receive(self, authorization: str | None, body: bytes) -> tuple[int, dict]:
        if self._auth and authorization != self._auth:
            return 401, {"error": "bad credentials"}
        try:
            document = json.loads(body)
            login = document["login"]
        except (ValueError, KeyError, TypeError):
            return 400, {"error": "a JSON object with a login"}
        with self._lock:
            failure = next((f for f in self._failures if f.login in (None, login)), None)
            if failure is not None and failure.times is not None:
                failure.times -= 1
                if failure.times <= 0:
                    self._failures.remove(failure)
            status = failure.status if failure else 200
            self.requests.append({"login": login, "status": status})
            if failure:
                return status, {"error": failure.message}
            self.states[login] = document
        return 200, {"ok": True}


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
