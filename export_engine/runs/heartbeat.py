"""A background thread that proves the run is alive and reports its progress, off the data path.

The COPY only stores its latest row count in a `LatestRows`; every `interval_seconds` this thread
writes heartbeat and progress in one best-effort UPDATE. If the export DB blips, beats fail and are
logged, the COPY never waits; the reconciler fails a run only after `HEARTBEAT_TIMEOUT_SECONDS` of
silence (a killed worker, a frozen host), and run retries take over.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from dagster import get_dagster_logger


class LatestRows:
    """The newest `rows_written` estimate; written by the streaming thread, read by the heartbeat."""

    def __init__(self) -> None:
        self.rows: int | None = None

    def report(self, rows: int) -> None:
        self.rows = rows


@contextmanager
def heartbeat(beat: Callable[[], None], interval_seconds: float = 2.0) -> Iterator[None]:
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(interval_seconds):
            try:
                beat()
            except Exception as exc:  # a DB blip: the next beat tries again; the export goes on
                get_dagster_logger().warning("heartbeat failed: %s", exc)

    thread = threading.Thread(target=run, name="export-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
