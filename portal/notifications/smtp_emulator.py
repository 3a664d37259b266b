"""A local mail catcher for ``make run``: a plain SMTP server (no TLS, no AUTH: a relay on
the local network, the e-mail channel's "none" security) that keeps every message, and an
inbox page over HTTP. Tests use a real SMTP server with STARTTLS instead (aiosmtpd).

    catcher = MailCatcher().start()     # catcher.smtp_port, catcher.url (the inbox page)
    catcher.messages                    # to, from, subject, body

Standalone: ``python -m portal.notifications.smtp_emulator --port 8025 --http-port 8094``.
"""
from __future__ import annotations

import argparse
import html
import socketserver
import threading
import time
from email import message_from_bytes, policy

from ..platforms.emulation import Answer, EmulatedServer


class _Smtp(socketserver.StreamRequestHandler):
    def handle(self):
        catcher: MailCatcher = self.server.catcher
        self._reply("220 localhost ESMTP portal mail catcher")
        sender, recipients = None, []
        while True:
            line = self.rfile.readline(4096)
            if not line:
                return
            verb = line.decode("utf-8", "replace").strip()
            upper = verb.upper()
            if upper.startswith("EHLO"):
                self._reply("250-localhost", "250-8BITMIME", "250-SMTPUTF8", "250 SIZE 10485760")
            elif upper.startswith("HELO"):
                self._reply("250 localhost")
            elif upper.startswith("MAIL FROM:"):
                sender, recipients = verb[10:].split()[0].strip("<>") if verb[10:].strip() else "", []
                self._reply("250 2.1.0 OK")
            elif upper.startswith("RCPT TO:"):
                recipients.append(verb[8:].split()[0].strip("<>"))
                self._reply("250 2.1.5 OK")
            elif upper == "DATA":
                self._reply("354 End data with <CR><LF>.<CR><LF>")
                data = []
                while True:
                    chunk = self.rfile.readline(1 << 20)
                    if not chunk or chunk in (b".\r\n", b".\n"):
                        break
                    data.append(chunk[1:] if chunk.startswith(b"..") else chunk)
                catcher.keep(sender, recipients, b"".join(data))
                self._reply("250 2.0.0 OK: queued")
            elif upper in ("RSET", "NOOP"):
                self._reply("250 OK")
            elif upper == "QUIT":
                self._reply("221 2.0.0 Bye")
                return
            else:
                self._reply("502 5.5.2 Command not implemented")

    def _reply(self, *lines: str) -> None:
        self.wfile.write("".join(f"{line}\r\n" for line in lines).encode())


class _SmtpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class MailCatcher(EmulatedServer):
    """The SMTP side on ``smtp_port``; ``handle`` serves the inbox page (HTTP, ``base_url``)."""

    thread_name = "mail-catcher"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, smtp_port: int = 0):
        super().__init__(host, port)
        self.smtp_port = smtp_port
        self.messages: list[dict] = []
        self._smtp: _SmtpServer | None = None

    @property
    def url(self) -> str:
        return self.base_url

    def start(self):
        self._smtp = _SmtpServer((self.host, self.smtp_port), _Smtp)
        self._smtp.catcher = self
        self.smtp_port = self._smtp.server_address[1]
        threading.Thread(target=self._smtp.serve_forever, name="mail-catcher-smtp", daemon=True).start()
        return super().start()

    def stop(self) -> None:
        if self._smtp is not None:
            self._smtp.shutdown()
            self._smtp.server_close()
            self._smtp = None
        super().stop()

    def keep(self, sender: str | None, recipients: list[str], data: bytes) -> None:
        msg = message_from_bytes(data, policy=policy.default)
        body = msg.get_body(("plain",))
        with self._lock:
            self.messages.append({"from": sender, "to": recipients, "subject": str(msg["Subject"] or ""),
                                  "body": body.get_content() if body is not None else "", "at": time.time()})

    def handle(self, method: str, path: str, headers, body: bytes) -> Answer:
        with self._lock:
            rows = list(reversed(self.messages))
        items = "".join(
            f"<tr><td>{time.strftime('%H:%M:%S', time.localtime(m['at']))}</td><td>{html.escape(', '.join(m['to']))}"
            f"</td><td>{html.escape(m['subject'])}</td><td style='white-space:pre-wrap'>{html.escape(m['body'])}"
            f"</td></tr>" for m in rows)
        page = (f"<!doctype html><meta charset='utf-8'><title>Mail catcher</title><h1>Mail catcher</h1>"
                f"<p>SMTP on {self.host}:{self.smtp_port}; {len(rows)} message(s)</p>"
                f"<table border=1 cellpadding=4><tr><th>time</th><th>to</th><th>subject</th><th>text</th></tr>"
                f"{items}</table>")
        return Answer(200, page, "text/html; charset=utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8025, help="SMTP port")
    parser.add_argument("--http-port", type=int, default=8094, help="the inbox page's port")
    args = parser.parse_args()
    catcher = MailCatcher(args.host, args.http_port, smtp_port=args.port).start()
    print(f"mail catcher: SMTP {args.host}:{catcher.smtp_port}, inbox {catcher.url} (Ctrl+C to stop)", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        catcher.stop()


if __name__ == "__main__":
    main()
