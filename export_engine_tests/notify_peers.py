"""Real peers for the notification tests: a webhook receiver and an imitation of Telegram's Bot API.

Both are plain HTTP servers on free loopback ports, in threads of the test process. The receiver
verifies every request's signature with the `standardwebhooks` package (an implementation of the
spec that is not ours); the Telegram fake answers `getMe`, `sendMessage` and `getUpdates` as the
Bot API does, and can be told to answer the next calls with a 429 (`retry_after`) or a 5xx.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook

from devstack.processes import free_port


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    verified: bool
    answered: int
    at: float  # time.time() on arrival

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)


class _Server:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._httpd: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    def start(self) -> _Server:
        ThreadingHTTPServer.allow_reuse_address = True
        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Down for real: the port refuses connections until `start` again."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None


class WebhookReceiver(_Server):
    """Records every POST; answers `answers` in order (then 200); checks signatures with `secret`."""

    def __init__(self, secret: str | None = None) -> None:
        super().__init__()
        self.secret = secret
        self.received: list[Received] = []
        self.answers: list[int] = []
        self._lock = threading.Lock()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                verified = False
                if receiver.secret:
                    try:
                        Webhook(receiver.secret).verify(body, headers)
                        verified = True
                    except Exception:
                        verified = False
                with receiver._lock:
                    status = receiver.answers.pop(0) if receiver.answers else 200
                    status = status if verified or not receiver.secret else 401
                    receiver.received.append(Received(headers, body, verified, status, time.time()))
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        return Handler


@dataclass
class FakeTelegram(_Server):
    """The Bot API at `/bot<token>/<method>`; `messages` holds every accepted sendMessage."""

    token: str = "123456:TEST-token"
    username: str = "export_test_bot"
    messages: list[dict[str, Any]] = field(default_factory=list)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    # the next sendMessage answers: (status, body) pairs, used before answering normally
    send_failures: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    on_message: Callable[[dict[str, Any]], None] | None = None
    port_: int | None = None

    def __post_init__(self) -> None:
        _Server.__init__(self, self.port_)
        self._lock = threading.Lock()

    @property
    def api_url(self) -> str:
        return self.url

    def fail_next(self, status: int, retry_after: int | None = None) -> None:
        body: dict[str, Any] = {"ok": False, "error_code": status, "description": f"fake error {status}"}
        if retry_after is not None:
            body["description"] = f"Too Many Requests: retry after {retry_after}"
            body["parameters"] = {"retry_after": retry_after}
        self.send_failures.append((status, body))

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length", 0)))
                params = json.loads(raw or b"{}")
                prefix = f"/bot{fake.token}/"
                if not self.path.startswith(prefix):
                    return self._answer(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
                method = self.path[len(prefix) :]
                with fake._lock:
                    fake.calls.append((method, params))
                    if method == "getMe":
                        return self._answer(
                            200, {"ok": True, "result": {"id": 1, "is_bot": True, "username": fake.username}}
                        )
                    if method == "getUpdates":
                        offset = int(params.get("offset", 0))
                        result = [u for u in fake.updates if u["update_id"] >= offset]
                        return self._answer(200, {"ok": True, "result": result})
                    if method == "sendMessage":
                        if fake.send_failures:
                            return self._answer(*fake.send_failures.pop(0))
                        message = {**params, "received_at": time.time()}
                        fake.messages.append(message)
                        if fake.on_message:
                            fake.on_message(message)
                        return self._answer(200, {"ok": True, "result": {"message_id": len(fake.messages)}})
                return self._answer(404, {"ok": False, "error_code": 404, "description": "Not Found"})

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler

    def start_update(self, chat_id: int, text: str) -> dict[str, Any]:
        """A Telegram update carrying `text` from `chat_id` (what the user's Start button sends)."""
        update = {
            "update_id": 1000 + len(self.updates),
            "message": {
                "message_id": 1,
                "chat": {"id": chat_id, "type": "private"},
                "date": int(time.time()),
                "text": text,
            },
        }
        self.updates.append(update)
        return update
