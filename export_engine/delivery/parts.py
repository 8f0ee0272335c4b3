"""The machinery under `MultipartUploadStream`: part buffers, part numbering and the upload threads.

`Piece` is one writer's run of part numbers (the whole object, or one of `split(n)`'s pieces);
`Uploader` owns the fixed set of reusable part buffers and the threads that upload them, so memory is
flat and a slow S3 blocks the writer (backpressure). Both know only a boto3 client, a bucket, a key and
an upload id.

    UploadError      an upload thread failed; the S3 error is its cause
    UploadStopped    the caller's `stop` event was set (the export was canceled elsewhere)
"""

from __future__ import annotations

import io
import queue
import threading
from typing import Any

from export_engine.streaming.progress import MIB

MIN_PART_SIZE = 5 * MIB  # S3's minimum for every part but the last
MAX_PART_SIZE = 5 * 1024 * MIB
MAX_PARTS = 10_000
UPLOAD_THREADS = 2  # two parts in flight: hides one request's latency behind the other's transfer
_GROWTH_STEPS = 10
_WAIT = 0.5  # seconds between checks for a failed upload while waiting for a buffer
_STOP = object()


class UploadError(Exception):
    """The background upload failed; carries the S3 error as its cause."""


class UploadStopped(Exception):
    """Raised by `write` once the `stop` event is set; the context manager then aborts the upload."""


def joined(first: bytearray, second: bytearray) -> bytearray:
    """`first + second`, extending one of them in place rather than copying both."""
    if not first:
        return second
    first += second
    return first


class Piece(io.RawIOBase):
    """Writes one contiguous piece of the object as whole parts numbered from `first_number`.

    A piece that holds back a head (`held` bytes) leaves its first part number free for the boundary
    part that `MultipartUploadStream._stitch` uploads.
    """

    def __init__(
        self,
        uploader: Uploader,
        part_size: int,
        *,
        first_number: int,
        numbers: int,
        held: int,
        stop: threading.Event | None = None,
    ) -> None:
        super().__init__()
        self._uploader = uploader
        self._stop = stop
        self._part_size = part_size
        self.first_number = first_number
        self._end_number = first_number + numbers  # exclusive
        self._step = max(1, numbers // _GROWTH_STEPS)
        self._next_number = first_number + (1 if held else 0)
        self.head = bytearray(held) if held else bytearray()
        self._holding = bool(held)
        self._buffer: bytearray | None = self.head if held else None
        self._filled = 0
        self.shipped = 0
        self.bytes_written = 0

    @property
    def last_number(self) -> int:
        return self._next_number - 1

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:  # type: ignore[override]
        if self._stop is not None and self._stop.is_set():
            raise UploadStopped("the upload was stopped before it finished")
        view = data if isinstance(data, memoryview) else memoryview(data)
        if view.ndim != 1 or view.itemsize != 1:
            view = view.cast("B")
        size = view.nbytes
        done = 0
        while done < size:
            if self._buffer is None:
                self._buffer = self._uploader.acquire(self.part_size_now())
            room = len(self._buffer) - self._filled
            take = min(room, size - done)
            self._buffer[self._filled : self._filled + take] = view[done : done + take]
            self._filled += take
            done += take
            if self._filled == len(self._buffer):
                self._buffer_full()
        self.bytes_written += size
        return size

    def part_size_now(self) -> int:
        return min(self._part_size << (self.shipped // self._step), MAX_PART_SIZE)

    def _buffer_full(self) -> None:
        if self._holding:  # the head is complete: keep it for the boundary part
            self._holding = False
        else:
            if self._next_number >= self._end_number - 1:  # keep one number for the last part
                raise UploadError(f"more than {self._end_number - self.first_number - 1} parts in one piece")
            assert self._buffer is not None
            self._uploader.submit(self._next_number, self._buffer, self._filled)
            self._next_number += 1
            self.shipped += 1
        self._buffer = None
        self._filled = 0

    def take_head(self) -> bytearray:
        """The held-back head, once it is complete (a short piece keeps everything in `take_tail`)."""
        if self._holding:
            return bytearray()
        head, self.head = self.head, bytearray()
        return head

    def take_tail(self) -> bytearray:
        """The bytes written after the last whole part (the whole piece if it never filled its head).

        It is the buffer itself, cut to its filled length in place: the last part costs no copy.
        """
        tail = self._buffer if self._buffer is not None else bytearray()
        if self._holding:  # never filled the head: the tail is the head buffer
            self.head = bytearray()
        elif self._buffer is not None:
            self._uploader.forget(self._buffer)
        del tail[self._filled :]
        self._buffer = None
        self._filled = 0
        return tail


class Uploader:
    """Upload threads, the queue feeding them, and the pool of reusable part buffers."""

    def __init__(
        self, client: Any, bucket: str, key: str, upload_id: str, *, threads: int, buffers: int
    ) -> None:
        self._client, self.bucket, self.key, self.upload_id = client, bucket, key, upload_id
        self.threads = max(1, threads)
        self._max_buffers = buffers
        self._allocated = 0
        self._free: queue.LifoQueue[bytearray] = queue.LifoQueue()
        self._lock = threading.Lock()
        self._queue: queue.Queue[Any] = queue.Queue()
        self.submitted = 0
        self.etags: dict[int, str] = {}
        self._error: BaseException | None = None
        self._cancelled = False
        self._workers = [
            threading.Thread(target=self._run, name=f"upload-{i}:{key}", daemon=True)
            for i in range(self.threads)
        ]
        for worker in self._workers:
            worker.start()

    def set_buffers(self, count: int) -> None:
        with self._lock:
            self._max_buffers = count

    def acquire(self, size: int) -> bytearray:
        """A buffer of exactly `size` bytes: a free one, a new one while under the cap, or wait for one."""
        while True:
            self.raise_if_failed()
            with self._lock:
                if self._free.empty() and self._allocated < self._max_buffers:
                    self._allocated += 1
                    return bytearray(size)
            try:
                buffer = self._free.get(timeout=_WAIT)
            except queue.Empty:
                continue
            if len(buffer) == size:
                return buffer
            return bytearray(size)  # the part size grew: drop the old buffer, allocate the new size

    def release(self, buffer: bytearray) -> None:
        self._free.put(buffer)

    def forget(self, buffer: bytearray) -> None:
        """`buffer` leaves the pool to become a last part."""
        with self._lock:
            self._allocated -= 1

    def submit(self, number: int, buffer: bytearray, length: int, *, reuse: bool = True) -> None:
        self.raise_if_failed()
        with self._lock:
            self.submitted += 1
        self._queue.put((number, buffer, length, reuse))

    def close(self) -> None:
        for _ in self._workers:
            self._queue.put(_STOP)
        for worker in self._workers:
            worker.join()

    def cancel(self) -> None:
        """Skip whatever is queued, wait for the parts in flight (so none lands after the abort)."""
        self._cancelled = True
        self.close()

    def raise_if_failed(self) -> None:
        if self._error is not None:
            stream = self
            raise UploadError(
                f"upload of part to s3://{stream.bucket}/{stream.key} failed: {self._error}"
            ) from self._error

    def _run(self) -> None:
        client, stream = self._client, self
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            number, buffer, length, reuse = item
            if self._error is None and not self._cancelled:
                body = buffer if length == len(buffer) else bytes(memoryview(buffer)[:length])
                try:
                    response = client.upload_part(
                        Bucket=stream.bucket,
                        Key=stream.key,
                        UploadId=stream.upload_id,
                        PartNumber=number,
                        Body=body,
                    )
                    self.etags[number] = response["ETag"]
                except BaseException as exc:
                    self._error = exc
            if reuse:
                self.release(buffer)  # also after a failure, so a waiting writer wakes and sees the error
