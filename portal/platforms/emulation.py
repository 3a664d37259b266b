"""What every platform emulator shares: a threaded HTTP server on a local port that can go down
and come back on the same port, answer late, and fail on demand.

A platform's emulator subclasses ``EmulatedServer`` and implements ``handle``; its protocol
(paths, quirks, state) stays in its own module. Failures are matched by keyword: the
subclass asks ``take_failure(login=..., method=...)`` where its protocol decides, and a
failure registered with ``fail(..., login="x")`` matches only that login (a key the failure
does not name matches anything).
"""
from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Failure:
    message: str
    status: int
    times: int | None            # None: until healed
    match: dict = field(default_factory=dict)

    def applies(self, attrs: dict) -> bool:
        return all(attrs.get(k) == v for k, v in self.match.items() if v is not None)


@dataclass
class Answer:
    status: int
    body: bytes | str | dict | list = b""
    content_type: str = "application/json"
    headers: dict = field(default_factory=dict)

    def payload(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body, ensure_ascii=False).encode()


class Gate:
    """Requests held at the door until the test opens it (``EmulatedServer.hold``), so that a
    test decides when concurrent calls go on instead of relying on the emulator's latency."""

    def __init__(self, method: str | None, path_prefix: str):
        self.method, self.path_prefix = method, path_prefix
        self.arrived: list[tuple[str, str]] = []
        self._opened = threading.Event()
        self._changed = threading.Condition()

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or method == self.method) and path.startswith(self.path_prefix)

    def enter(self, method: str, path: str, timeout: float = 60) -> None:
        with self._changed:
            self.arrived.append((method, path))
            self._changed.notify_all()
        self._opened.wait(timeout)

    def wait_arrivals(self, count: int, timeout: float) -> bool:
        """True once ``count`` requests have come to the gate; False after ``timeout`` seconds."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self.arrived) >= count, timeout)

    def open(self) -> None:
        self._opened.set()


class EmulatedServer:
    """Base of the emulators. Subclasses implement ``handle(method, path, headers, body)``
    returning an ``Answer``."""

    thread_name = "emulator"

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.host, self.port = host, port
        self.latency = 0.0              # seconds added to every answer
        self.gates: list[Gate] = []     # requests held until the test opens the gate (``hold``)
        self._failures: list[Failure] = []
        self._lock = threading.RLock()  # the subclass's state shares it
        self._server: ThreadingHTTPServer | None = None
        self._connections: set[socket.socket] = set()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- control --------------------------------------------------------------------------------

    def start(self):
        """Listen (again on the same port, after ``down``)."""
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the real platforms

            def setup(self):
                super().setup()
                # no Nagle: a small answer is not held back 40 ms waiting for more
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                with emulator._lock:
                    emulator._connections.add(self.connection)

            def finish(self):
                with emulator._lock:
                    emulator._connections.discard(self.connection)
                super().finish()

            def _serve(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                for gate in list(emulator.gates):
                    if gate.matches(self.command, self.path):
                        gate.enter(self.command, self.path)
                if emulator.latency:
                    time.sleep(emulator.latency)
                answer = emulator.handle(self.command, self.path, self.headers, body)
                data = answer.payload()
                self.send_response(answer.status)
                self.send_header("Content-Type", answer.content_type)
                self.send_header("Content-Length", str(len(data)))
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve  # noqa: N815

            def log_message(self, *args):  # keep test output quiet
                pass

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, name=self.thread_name, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop listening: connections are refused until ``up``, and kept-alive ones are cut
        (a client holding one must see the outage too)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._lock:
            open_connections, self._connections = list(self._connections), set()
        for conn in open_connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    up, down = start, stop

    def fail(self, message: str = "emulated failure", status: int = 503, times: int | None = None,
             **match) -> None:
        """Answer ``status`` with ``message`` where ``match`` applies, ``times`` times or until healed."""
        with self._lock:
            self._failures.append(Failure(message, status, times, match))

    def hold(self, path_prefix: str, method: str | None = None) -> Gate:
        """Hold requests to paths starting with ``path_prefix`` (and of ``method``) until the
        returned gate is opened (at most a minute)."""
        gate = Gate(method, path_prefix)
        self.gates.append(gate)
        return gate

    def heal(self) -> None:
        """No more failures and no latency."""
        with self._lock:
            self._failures.clear()
        self.latency = 0.0

    def take_failure(self, **attrs) -> Failure | None:
        """The first failure that applies to this request (counting it down), or None."""
        with self._lock:
            failure = next((f for f in self._failures if f.applies(attrs)), None)
            if failure is not None and failure.times is not None:
                failure.times -= 1
                if failure.times <= 0:
                    self._failures.remove(failure)
            return failure

    # -- protocol -------------------------------------------------------------------------------

    def handle(self, method: str, path: str, headers, body: bytes) -> Answer:  # pragma: no cover
        raise NotImplementedError
