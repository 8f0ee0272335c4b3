"""A background thread that proves the run worker is alive while an export streams.

If the worker is killed (OOM, `kill -9`, host loss) the heartbeats stop, and the
`stalled_exports_sensor` fails the run so Dagster's run retries start a fresh one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from dagster import get_dagster_logger


@contextmanager
def heartbeat(beat: Callable[[], None], interval_seconds: float = 2.0) -> Iterator[None]:
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(interval_seconds):
            try:
                beat()
            except Exception as exc:
                get_dagster_logger().warning("heartbeat failed: %s", exc)

    thread = threading.Thread(target=run, name="export-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
