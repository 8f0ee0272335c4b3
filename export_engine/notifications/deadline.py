"""One POST to a peer we do not control, bounded in time and in what is read back.

httpx's timeouts are per operation: a receiver that trickles a byte every few seconds never trips the
read timeout and holds the sender as long as it likes; a non-streamed answer is read whole, however
big. `post_within` gives the whole attempt one deadline (a watchdog shuts the connection's socket down
when it passes, whichever phase the request is in) and reads at most `MAX_ANSWER_BYTES` of the body
(review 2026-12-07 N3). The connection is never kept alive, so every attempt opens the connection
the watchdog watches.

    answer = post_within(client, url, content=body, headers=headers, extensions={}, seconds=10)
    # raises DeadlinePassed (an httpx.TransportError) once the deadline cut the attempt short
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx

MAX_ANSWER_BYTES = 4096


class DeadlinePassed(httpx.TransportError):
    """The peer had not answered in full when the attempt's deadline passed."""


@dataclass(frozen=True)
class Answer:
    status_code: int
    headers: httpx.Headers
    text: str  # the first MAX_ANSWER_BYTES of the body, decoded leniently


class _Watchdog:
    """Shuts down every socket the attempt connects once the deadline passes (httpcore's trace hook
    hands over each new connection's stream)."""

    def __init__(self, seconds: float) -> None:
        self._at = time.monotonic() + seconds
        self._timers: list[threading.Timer] = []
        self.expired = False

    def trace(self, event: str, info: dict[str, Any]) -> None:
        if event == "connection.connect_tcp.complete":
            sock = info["return_value"].get_extra_info("socket")
            timer = threading.Timer(max(0.0, self._at - time.monotonic()), self._cut, (sock,))
            timer.daemon = True
            timer.start()
            self._timers.append(timer)

    def _cut(self, sock: socket.socket) -> None:
        self.expired = True
        with contextlib.suppress(OSError):  # already closed: the attempt ended on its own
            sock.shutdown(socket.SHUT_RDWR)

    def cancel(self) -> None:
        for timer in self._timers:
            timer.cancel()


def post_within(
    client: httpx.Client,
    url: httpx.URL | str,
    *,
    content: bytes,
    headers: dict[str, str],
    extensions: dict[str, Any],
    seconds: float,
) -> Answer:
    watchdog = _Watchdog(seconds)
    try:
        with client.stream(
            "POST",
            url,
            content=content,
            headers={**headers, "Connection": "close"},  # no reuse: each attempt's socket is watched
            extensions={**extensions, "trace": watchdog.trace},
            timeout=seconds,
            follow_redirects=False,
        ) as response:
            head = b""
            if not response.is_success:  # only an error's first bytes are kept (for the delivery log)
                for chunk in response.iter_raw():
                    head += chunk
                    if len(head) >= MAX_ANSWER_BYTES:
                        break
            return Answer(
                response.status_code, response.headers, head[:MAX_ANSWER_BYTES].decode(errors="replace")
            )
    except httpx.HTTPError as exc:
        if watchdog.expired:
            raise DeadlinePassed(f"no complete answer within {seconds:g} s") from exc
        raise
    finally:
        watchdog.cancel()
