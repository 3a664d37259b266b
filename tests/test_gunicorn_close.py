"""The repository's gunicorn.conf.py closes a connection at once when the request was read to
its end, and lingers for the client's close only when the client may still be sending (a body
the app did not read): an idle client does not hold a worker, and a refused upload still gets
its answer whole (gunicorn's own graceful close). Real gunicorn, real sockets."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

APP = textwrap.dedent('''
    import os

    def app(environ, start_response):
        if environ["PATH_INFO"] == "/pid":
            answer = str(os.getpid()).encode()
            start_response("200 OK", [("Content-Length", str(len(answer)))])
        elif environ["PATH_INFO"] == "/read":
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            answer = b"read %d" % len(body)
            start_response("200 OK", [("Content-Length", str(len(answer)))])
        else:  # refused without reading the body, as the callbacks refuse a stranger
            answer = b"refused" * 1000
            start_response("401 Unauthorized", [("Content-Length", str(len(answer)))])
        return [answer]
''')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(tmp_path, *extra: str):
    (tmp_path / "tinyapp.py").write_text(APP)
    port = _free_port()
    env = {**os.environ, "GUNICORN_WORKERS": "1", "GUNICORN_BIND": f"127.0.0.1:{port}"}
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), *extra,
                             "--pythonpath", str(tmp_path), "tinyapp:app"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    return proc, port


@pytest.fixture
def server(tmp_path):
    proc, port = _serve(tmp_path)
    yield port
    proc.terminate()
    proc.wait(10)


def _head(path: str, length: int) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {length}\r\n\r\n").encode()


def _read_all(sock: socket.socket) -> bytes:
    out = b""
    while chunk := sock.recv(65536):
        out += chunk
    return out


def test_a_client_that_keeps_its_socket_open_does_not_hold_the_worker(server):
    """One worker; the first client reads its answer and keeps the connection open. The second
    client is answered long before gunicorn's 2-second linger for the first one's close would
    have ended (the first is still open all along)."""
    first = socket.create_connection(("127.0.0.1", server), timeout=10)
    first.sendall(_head("/read", 5) + b"hello")
    answer = b""
    while b"read 5" not in answer:
        answer += first.recv(65536)
    try:
        with socket.create_connection(("127.0.0.1", server), timeout=1.5) as second:
            second.sendall(_head("/read", 2) + b"hi")
            assert _read_all(second).endswith(b"read 2")
    finally:
        first.close()


def test_a_refused_upload_still_gets_its_whole_answer(server):
    """The app answers 401 without reading the body the client is still sending: the worker
    lingers (gunicorn's graceful close drains what comes), so the client reads the whole answer,
    not a reset (a close with unread bytes in the buffer sends a RST)."""
    sock = socket.create_connection(("127.0.0.1", server), timeout=10)
    try:
        sock.sendall(_head("/refuse", 1_000_000) + b"x" * 10_000)
        time.sleep(0.3)  # the answer is written meanwhile; the rest of the body comes after it
        try:
            sock.sendall(b"x" * 20_000)
        except OSError:
            pass  # the server may have stopped reading; what matters is the answer below
        sock.shutdown(socket.SHUT_WR)
        answer = _read_all(sock)
    finally:
        sock.close()
    assert answer.startswith(b"HTTP/1.1 401")
    assert answer.endswith(b"refused" * 1000)


def test_behind_gunicorns_own_tls_one_worker_serves_request_after_request(tmp_path):
    """gunicorn terminating TLS itself (--certfile/--keyfile): the requests are served by the
    same worker, one after another (a close that failed on the TLS socket killed the worker
    after each one)."""
    import datetime
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                         serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    proc, port = _serve(tmp_path, "--certfile", str(tmp_path / "cert.pem"), "--keyfile", str(tmp_path / "key.pem"))
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    pids = []
    try:
        for _ in range(4):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
                    context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                tls.sendall(b"GET /pid HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                answer = b""
                while chunk := tls.recv(65536):
                    answer += chunk
            assert answer.startswith(b"HTTP/1.1 200")
            pids.append(answer.rpartition(b"\r\n\r\n")[2])
    finally:
        proc.terminate()
        proc.wait(10)
    assert len(set(pids)) == 1, pids
