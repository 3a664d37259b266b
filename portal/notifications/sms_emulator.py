"""A local SMS.ru-style gateway (the protocol of sms.py) for tests and ``make run``.

It answers as the real one does, unpleasant parts included: HTTP 200 with ``"status": "ERROR"``
and a Russian ``status_text`` for every refusal, ``sms_id`` as a string, ``balance`` as a number
that runs out (code 201), a per-number limit of identical messages a minute (code 231)::

    gw = SmsGateway(api_id="secret").start()
    gw.fail("Сервис временно недоступен, попробуйте чуть позже", status=220, times=2)  # request level
    gw.fail("Номер находится в стоп-листе", status=209, to="79990000000")            # one number
    gw.fail("Bad Gateway", status=502)                                                # an HTTP error
    gw.down(); gw.up()                       # refuse connections, then listen again (same port)
    gw.messages                              # what was accepted: to, text, sender, sms_id
    GET <base_url>/                          # the same as an inbox page (``make run``)

Standalone: ``python -m portal.notifications.sms_emulator --port 8095 --api-id demo``.
"""
from __future__ import annotations

import argparse
import html
import threading
import time
from urllib.parse import parse_qs, urlsplit

from ..platforms.emulation import Answer, EmulatedServer

ERRORS = {
    200: "Неправильный api_id",
    201: "Не хватает средств на лицевом счету",
    202: "Неправильно указан номер телефона получателя, либо на него нет маршрута",
    203: "Нет текста сообщения",
    204: "Имя отправителя не согласовано с администрацией",
    205: "Сообщение слишком длинное (превышает 8 СМС)",
    220: "Сервис временно недоступен, попробуйте чуть позже",
    231: "Превышен лимит одинаковых сообщений на этот номер в минуту",
}
PRICE = 3.5  # roubles per message part


class SmsGateway(EmulatedServer):
    thread_name = "sms-gateway"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, api_id: str = "demo-api-id",
                 balance: float = 1000.0, senders: tuple[str, ...] = ("", "Portal")):
        super().__init__(host, port)
        self.api_id, self.balance, self.senders = api_id, balance, set(senders)
        self.same_per_minute = 5
        self.messages: list[dict] = []
        self.requests = 0
        self._next_id = 10000000

    @property
    def url(self) -> str:
        return self.base_url

    def handle(self, method: str, path: str, headers, body: bytes) -> Answer:
        parts = urlsplit(path)
        if parts.path in ("/", "/inbox"):
            return self._inbox()
        if parts.path != "/sms/send":
            return Answer(404, "<html><body>404 Not Found</body></html>", "text/html; charset=utf-8")
        form = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        if body:
            form.update({k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace")).items()})
        with self._lock:
            self.requests += 1
        to = form.get("to", "")
        failure = self.take_failure(to=to)
        if failure is not None and failure.status >= 500:
            return Answer(failure.status, f"<html><body>{html.escape(failure.message)}</body></html>",
                          "text/html; charset=utf-8")
        as_json = form.get("json") == "1"
        if form.get("api_id") != self.api_id:
            return self._error(200, as_json)
        if failure is not None and failure.match.get("to") is None:
            return self._error(failure.status, as_json, failure.message)
        if form.get("from", "") not in self.senders:
            return self._error(204, as_json)
        text = form.get("msg", "")
        if not text:
            return self._error(203, as_json)
        parts_count = max(1, -(-len(text) // 70))
        if parts_count > 8:
            return self._error(205, as_json)
        with self._lock:
            if self.balance < PRICE * parts_count:
                return self._error(201, as_json)
            if failure is not None:
                one = {"status": "ERROR", "status_code": failure.status, "status_text": failure.message}
            elif not to.isdigit() or not 10 <= len(to) <= 15:
                one = {"status": "ERROR", "status_code": 202, "status_text": ERRORS[202]}
            elif sum(1 for m in self.messages if m["to"] == to and m["text"] == text
                     and m["at"] > time.time() - 60) >= self.same_per_minute:
                one = {"status": "ERROR", "status_code": 231, "status_text": ERRORS[231]}
            else:
                self._next_id += 1
                sms_id = f"000000-{self._next_id}"
                self.balance = round(self.balance - PRICE * parts_count, 2)
                self.messages.append({"to": to, "text": text, "sender": form.get("from", ""), "sms_id": sms_id,
                                      "at": time.time()})
                one = {"status": "OK", "status_code": 100, "sms_id": sms_id}
            balance = self.balance
        if not as_json:  # the plain-text answer: the code, the message id or error code, the balance
            line = one.get("sms_id") or str(one["status_code"])
            return Answer(200, f"100\n{line}\nbalance={balance}", "text/plain; charset=utf-8")
        return Answer(200, {"status": "OK", "status_code": 100, "sms": {to: one}, "balance": balance})

    def _error(self, code: int, as_json: bool, text: str | None = None) -> Answer:
        if not as_json:
            return Answer(200, str(code), "text/plain; charset=utf-8")
        return Answer(200, {"status": "ERROR", "status_code": code, "status_text": text or ERRORS.get(code, "")})

    def _inbox(self) -> Answer:
        with self._lock:
            rows = list(reversed(self.messages))
        items = "".join(
            f"<tr><td>{time.strftime('%H:%M:%S', time.localtime(m['at']))}</td><td>{html.escape(m['to'])}</td>"
            f"<td>{html.escape(m['sender'])}</td><td>{html.escape(m['text'])}</td></tr>" for m in rows)
        page = (f"<!doctype html><meta charset='utf-8'><title>SMS gateway emulator</title>"
                f"<h1>SMS gateway emulator</h1><p>{len(rows)} message(s); balance {self.balance}</p>"
                f"<table border=1 cellpadding=4><tr><th>time</th><th>to</th><th>sender</th><th>text</th></tr>"
                f"{items}</table>")
        return Answer(200, page, "text/html; charset=utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8095)
    parser.add_argument("--api-id", default="demo-api-id")
    args = parser.parse_args()
    gw = SmsGateway(args.host, args.port, api_id=args.api_id).start()
    print(f"SMS gateway emulator on {gw.url} (inbox at /) (Ctrl+C to stop)", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        gw.stop()


if __name__ == "__main__":
    main()
