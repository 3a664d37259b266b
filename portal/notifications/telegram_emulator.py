"""A local Telegram Bot API (the protocol of telegram.py) for tests and ``make run``.

``POST /bot<token>/<method>`` (JSON, form or query), answering as the Bot API does: ``{"ok":
true, "result": ...}``, or ``{"ok": false, "error_code": N, "description": "..."}`` with HTTP
status N — 401 "Unauthorized" (a wrong token), 400 "Bad Request: chat not found", 403
"Forbidden: bot was blocked by the user", and 429 "Too Many Requests: retry after N" with
``"parameters": {"retry_after": N}`` past ``rate`` messages a second (or when told)::

    bot = TelegramBotApi(token="123:ABC", username="portal_demo_bot").start()
    bot.user_sends(5550001, "/start <token>")   # a user opens the deep link: an update to poll
    bot.block(5550001)                          # the user blocks the bot: 403 from now on
    bot.throttle(retry_after=2, times=1)        # the next sendMessage is answered 429
    bot.rate = 30                               # messages a second before 429s
    bot.messages                                # what the bot sent: chat_id, text, message_id
    GET <base_url>/                             # the same as an inbox page (``make run``)

Standalone: ``python -m portal.notifications.telegram_emulator --port 8096``.
"""
from __future__ import annotations

import argparse
import html
import json
import threading
import time
from urllib.parse import parse_qs, urlsplit

from ..platforms.emulation import Answer, EmulatedServer


class TelegramBotApi(EmulatedServer):
    thread_name = "telegram-bot-api"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, token: str = "123456:demo-token",
                 username: str = "portal_demo_bot"):
        super().__init__(host, port)
        self.token, self.username = token, username
        self.rate: float | None = None       # sendMessage calls a second before 429
        self.messages: list[dict] = []       # what the bot sent
        self.chats: dict[int, dict] = {}     # chats that wrote to the bot: id -> the user
        self.blocked: set[int] = set()
        self.updates: list[dict] = []
        self._update_id = 700000000
        self._message_id = 0
        self._sent_times: list[float] = []
        self._throttles: list[list] = []     # [retry_after, times left]

    @property
    def url(self) -> str:
        return self.base_url

    # -- the test's (or the demo's) side --------------------------------------------------------

    def user_sends(self, chat_id: int, text: str, first_name: str = "Demo") -> None:
        """A user writes to the bot (e.g. opens the deep link: "/start <token>")."""
        with self._lock:
            user = {"id": chat_id, "is_bot": False, "first_name": first_name}
            self.chats[chat_id] = user
            self.blocked.discard(chat_id)
            self._update_id += 1
            self._message_id += 1
            self.updates.append({"update_id": self._update_id, "message": {
                "message_id": self._message_id, "from": user,
                "chat": {"id": chat_id, "first_name": first_name, "type": "private"},
                "date": int(time.time()), "text": text,
                **({"entities": [{"offset": 0, "length": 6, "type": "bot_command"}]} if text.startswith("/start")
                   else {})}})

    def block(self, chat_id: int) -> None:
        with self._lock:
            self.blocked.add(chat_id)

    def throttle(self, retry_after: int = 1, times: int = 1) -> None:
        with self._lock:
            self._throttles.append([retry_after, times])

    def sent_to(self, chat_id: int) -> list[str]:
        with self._lock:
            return [m["text"] for m in self.messages if m["chat_id"] == chat_id]

    # -- the protocol ---------------------------------------------------------------------------

    def handle(self, method: str, path: str, headers, body: bytes) -> Answer:
        parts = urlsplit(path)
        if parts.path in ("/", "/inbox"):
            return self._inbox()
        if parts.path == "/_user" and method == "POST":  # the inbox page's form: a user writes to the bot
            form = {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
            try:
                self.user_sends(int(form.get("chat_id", "")), form.get("text", ""))
            except ValueError:
                return Answer(400, "chat_id: a number", "text/plain; charset=utf-8")
            return Answer(303, b"", "text/plain", headers={"Location": "/"})
        prefix, _, api_method = parts.path.lstrip("/").partition("/")
        if not prefix.startswith("bot"):
            return self._error(404, "Not Found")
        if prefix[3:] != self.token:
            return self._error(401, "Unauthorized")
        params = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        if body:
            if (headers.get("Content-Type") or "").startswith("application/json"):
                try:
                    params.update(json.loads(body))
                except ValueError:
                    return self._error(400, "Bad Request: can't parse JSON object")
            else:
                params.update({k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace")).items()})
        failure = self.take_failure(method=api_method)
        if failure is not None:
            return self._error(failure.status, failure.message)
        handler = {"getMe": self._get_me, "sendMessage": self._send_message,
                   "getUpdates": self._get_updates}.get(api_method)
        if handler is None:
            return self._error(404, "Not Found")
        return handler(params)

    def _error(self, code: int, description: str, **parameters) -> Answer:
        doc = {"ok": False, "error_code": code, "description": description}
        if parameters:
            doc["parameters"] = parameters
        return Answer(code, doc)

    def _get_me(self, params: dict) -> Answer:
        return Answer(200, {"ok": True, "result": {"id": int(self.token.split(":")[0]), "is_bot": True,
                                                   "first_name": "Portal", "username": self.username}})

    def _send_message(self, params: dict) -> Answer:
        try:
            chat_id = int(params.get("chat_id"))
        except (TypeError, ValueError):
            return self._error(400, "Bad Request: chat not found")
        text = str(params.get("text") or "")
        if not text.strip():
            return self._error(400, "Bad Request: message text is empty")
        if len(text) > 4096:
            return self._error(400, "Bad Request: message is too long")
        with self._lock:
            now = time.monotonic()
            if self._throttles:
                self._throttles[0][1] -= 1
                retry_after = self._throttles[0][0]
                if self._throttles[0][1] <= 0:
                    self._throttles.pop(0)
                return self._error(429, f"Too Many Requests: retry after {retry_after}", retry_after=retry_after)
            if self.rate:
                self._sent_times = [t for t in self._sent_times if t > now - 1]
                if len(self._sent_times) >= self.rate:
                    return self._error(429, "Too Many Requests: retry after 1", retry_after=1)
            if chat_id not in self.chats:
                return self._error(400, "Bad Request: chat not found")
            if chat_id in self.blocked:
                return self._error(403, "Forbidden: bot was blocked by the user")
            self._sent_times.append(now)
            self._message_id += 1
            message = {"message_id": self._message_id,
                       "from": {"id": int(self.token.split(":")[0]), "is_bot": True, "first_name": "Portal",
                                "username": self.username},
                       "chat": {"id": chat_id, "first_name": self.chats[chat_id]["first_name"], "type": "private"},
                       "date": int(time.time()), "text": text}
            self.messages.append({"chat_id": chat_id, "text": text, "message_id": self._message_id,
                                  "parse_mode": params.get("parse_mode"), "at": time.time()})
        return Answer(200, {"ok": True, "result": message})

    def _get_updates(self, params: dict) -> Answer:
        try:
            offset = int(params.get("offset") or 0)
        except (TypeError, ValueError):
            return self._error(400, "Bad Request: wrong offset specified")
        with self._lock:
            if offset:  # updates before the offset are confirmed: gone for good, as on Telegram
                self.updates = [u for u in self.updates if u["update_id"] >= offset]
            return Answer(200, {"ok": True, "result": list(self.updates[:100])})

    def _inbox(self) -> Answer:
        with self._lock:
            rows = list(reversed(self.messages))
        items = "".join(
            f"<tr><td>{time.strftime('%H:%M:%S', time.localtime(m['at']))}</td><td>{m['chat_id']}</td>"
            f"<td style='white-space:pre-wrap'>{html.escape(m['text'])}</td></tr>" for m in rows)
        page = (f"<!doctype html><meta charset='utf-8'><title>Telegram Bot API emulator</title>"
                f"<h1>Telegram Bot API emulator: @{html.escape(self.username)}</h1>"
                f"<form method=post action='/_user'><p>A user writes to the bot (paste the cabinet's "
                f"<code>/start …</code> here): chat id <input name=chat_id value=100500 size=10> "
                f"<input name=text size=50 placeholder='/start token'> <button>Send</button></p></form>"
                f"<p>{len(rows)} message(s) sent by the bot</p>"
                f"<table border=1 cellpadding=4><tr><th>time</th><th>chat</th><th>text</th></tr>{items}</table>")
        return Answer(200, page, "text/html; charset=utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8096)
    parser.add_argument("--token", default="123456:demo-token")
    args = parser.parse_args()
    bot = TelegramBotApi(args.host, args.port, token=args.token).start()
    print(f"Telegram Bot API emulator on {bot.url} (inbox at /) (Ctrl+C to stop)", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        bot.stop()


if __name__ == "__main__":
    main()
