"""Read ahead of the consumer in a second thread, so decoding and encoding overlap on two cores.

Arrow decoding (the ADBC driver) and Parquet encoding (pyarrow, zstd) both release the GIL, but in
one thread they take turns: the export runs at the speed of their sum. With the reader one item
ahead, it runs at the speed of the slower. At most `depth` items wait in the queue, so memory stays
flat; an error on either side ends both, and the reader thread is always joined before returning,
so whatever the items come from (a database cursor) can be closed safely afterwards.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

_END = object()
_POLL = 0.5  # seconds: how often a blocked side checks whether the other side gave up


def prefetched(items: Iterable[T], transform: Callable[[T], R], *, depth: int = 1) -> Iterator[R]:
    """`transform(item)` for each item, computed in a reader thread up to `depth` items ahead."""
    ready: queue.Queue[object] = queue.Queue(maxsize=depth)
    stopped = threading.Event()

    def offer(value: object) -> bool:
        while not stopped.is_set():
            try:
                ready.put(value, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for item in items:
                if not offer(transform(item)):
                    return
        except BaseException as error:  # handed to the consumer, raised there
            offer(error)
            return
        offer(_END)

    reader = threading.Thread(target=read, name="prefetch", daemon=True)
    reader.start()
    try:
        while True:
            value = ready.get()
            if value is _END:
                return
            if isinstance(value, BaseException):
                raise value
            yield value  # type: ignore[misc]
    finally:
        stopped.set()
        while reader.is_alive():  # unblock a reader waiting on a full queue, then wait for it
            with contextlib.suppress(queue.Empty):
                ready.get(timeout=_POLL)
        reader.join()
