"""gzip for the text formats: COPY streams on the caller's thread, ISA-L compresses on a second one.

`ThreadedGzip` is the stream a gzip export's writer (CSV, JSON lines, JSON) writes into
(`FormatSpec.open`). It copies the COPY output into reused 1 MiB chunk buffers and hands them through
a two-slot queue to a thread that deflates them (ISA-L releases the GIL) into the sink, so
compression overlaps with the database stream and memory stays at four chunks. The output is a
standard gzip member.
"""

from __future__ import annotations

import io
import queue
import threading
from types import TracebackType
from typing import Any, Self

from isal import isal_zlib

CHUNK_SIZE = 1024 * 1024
GZIP_LEVEL = 1  # ISA-L's levels are 0-3; 1 is the measured sweet spot for CSV
_GZIP_WBITS = 31  # zlib's "gzip container" window bits
_QUEUED = 2  # chunks waiting for the compressor
_WAIT = 0.5  # seconds between checks for a dead compressor while waiting
_STOP = object()


class ThreadedGzip(io.RawIOBase):
    """A write-only stream that gzips into `sink` on a background thread.

    Use as a context manager: a clean exit writes the gzip trailer and waits for the thread; an
    exception stops the thread and leaves the sink to its owner (the upload aborts on its own).
    Every write to `sink` happens on the compressing thread until the context exits.
    """

    def __init__(self, sink: Any, *, level: int = GZIP_LEVEL, chunk_size: int = CHUNK_SIZE) -> None:
        super().__init__()
        self._sink = sink
        self._chunk_size = chunk_size
        # A fixed pool (one filling, two queued, one compressing), reused: allocating a fresh 1 MiB
        # object per chunk on one thread and freeing it on the other left 10-25 MB of fragmented
        # heap behind in some runs.
        self._free: queue.Queue[bytearray] = queue.Queue()
        for _ in range(_QUEUED + 1):
            self._free.put(bytearray(chunk_size))
        self._buffer = bytearray(chunk_size)
        self._filled = 0
        self._compressor = isal_zlib.compressobj(level, isal_zlib.DEFLATED, _GZIP_WBITS)
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=_QUEUED)
        self._error: BaseException | None = None
        self._abandoned = False
        self._finished = False
        self._thread = threading.Thread(target=self._compress, name="gzip-compress", daemon=True)
        self._thread.start()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:  # type: ignore[override]
        if self._finished:
            raise ValueError("write to a finished gzip stream")
        view = memoryview(data).cast("B")
        size = len(view)
        while view:
            take = min(self._chunk_size - self._filled, len(view))
            self._buffer[self._filled : self._filled + take] = view[:take]
            self._filled += take
            view = view[take:]
            if self._filled == self._chunk_size:
                self._ship()
        return size

    def _ship(self) -> None:
        """Queue the full buffer for the compressor and continue in a free one."""
        self._put((self._buffer, self._filled))
        self._buffer = self._wait(self._free.get)
        self._filled = 0

    def finish(self) -> None:
        """Compress what is left, write the trailer, and wait for the thread."""
        if self._finished:
            return
        if self._filled:
            self._put((self._buffer, self._filled))
            self._filled = 0
        self._put(_STOP)
        self._finished = True
        self._thread.join()
        self._raise_if_failed()

    def abandon(self) -> None:
        """Stop compressing after a failure elsewhere; whatever was queued is dropped."""
        if self._finished:
            return
        self._abandoned = True
        self._finished = True
        self._filled = 0
        self._queue.put(_STOP)  # the thread skips queued chunks once abandoned, so this never waits long
        self._thread.join()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.finish()
        else:
            self.abandon()

    def _put(self, item: Any) -> None:
        self._wait(lambda timeout: self._queue.put(item, timeout=timeout))

    def _wait(self, step: Any) -> Any:
        """`step(timeout=...)` until it succeeds, noticing a dead compressor instead of blocking forever."""
        while True:
            self._raise_if_failed()
            try:
                return step(timeout=_WAIT)
            except (queue.Full, queue.Empty):
                continue

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def _compress(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                if not self._abandoned and self._error is None:
                    self._guarded(lambda: self._sink.write(self._compressor.flush()))
                return
            buffer, length = item
            if not self._abandoned and self._error is None:  # else drain, so the producer never blocks
                with memoryview(buffer) as whole, whole[:length] as chunk:
                    self._guarded(lambda chunk=chunk: self._sink.write(self._compressor.compress(chunk)))
            self._free.put(buffer)

    def _guarded(self, step: Any) -> None:
        try:
            step()
        except BaseException as exc:
            self._error = exc
