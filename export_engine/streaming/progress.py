"""A pass-through stream that counts lines and reports progress about once a second."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from typing import Any


class ProgressTap(io.RawIOBase):
    """Forwards writes to `target`; `on_progress(lines)` is called at most every `interval` seconds.

    Sits behind an `io.BufferedWriter`, so it sees ~1 MiB chunks rather than one call per row, and
    counting newlines costs a memchr-speed `bytes.count` per chunk. The count is approximate for CSV
    (quoted newlines); the exact row count comes from the database when the stream ends.
    """

    def __init__(self, target: Any, on_progress: Callable[[int], None] | None, interval: float = 1.0) -> None:
        super().__init__()
        self._target = target
        self._on_progress = on_progress
        self._interval = interval
        self._next_report = time.monotonic() + interval
        self.lines = 0
        self.bytes = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:  # type: ignore[override]
        chunk = bytes(data)  # BufferedWriter hands us a memoryview of its reused buffer
        self._target.write(chunk)
        self.lines += chunk.count(b"\n")
        size = len(chunk)
        self.bytes += size
        if self._on_progress is not None and time.monotonic() >= self._next_report:
            self._on_progress(self.lines)
            self._next_report = time.monotonic() + self._interval
        return size
