"""A write-only stream that becomes one S3 object through a pipelined multipart upload.

Bytes are copied into preallocated part buffers. A full buffer goes to a small pool of upload threads
while the caller fills the next one; uploaded buffers are reused. The number of buffers is fixed
(one writer plus one per upload thread; with n > 2 writers, n + 1), so memory is flat however large
the export (two writers share the single writer's three buffers: as fast to S3, 7 MB less), and a slow
S3 makes the writer wait for a free buffer (backpressure) instead of queueing without bound.

Part sizes grow so S3's 10,000-part limit never binds: within a range of part numbers the size
doubles every tenth of the range (every 1,000 parts for a single writer), so 16 MiB parts reach
terabytes. A part never exceeds S3's 5 GiB maximum.

`split(n)` turns the stream into n writers for n contiguous pieces of the object, written at the same
time (one per COPY stream, say). Each piece uploads whole parts numbered inside its own range of part
numbers; the first `MIN_PART_SIZE` bytes of every piece but the first are held back, and `complete()`
uploads each piece's leftover tail together with the next piece's held head as one boundary part.
The object is the pieces concatenated in order, every part but the last at least 5 MiB.

The stream takes a boto3 client and knows nothing else about the world.

    UploadError      an upload thread failed; the S3 error is its cause
    UploadStopped    the caller's `stop` event was set (the export was canceled elsewhere)
"""

from __future__ import annotations

import io
import queue
import threading
from types import TracebackType
from typing import Any, Self

MIB = 1024 * 1024
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


class MultipartUploadStream(io.RawIOBase):
    """Use as a context manager: a clean exit completes the object, an exception aborts the upload."""

    def __init__(
        self,
        client: Any,
        bucket: str,
        key: str,
        *,
        part_size: int = 16 * MIB,
        content_type: str = "application/octet-stream",
        content_disposition: str | None = None,
        upload_threads: int = UPLOAD_THREADS,
        stop: threading.Event | None = None,
    ) -> None:
        super().__init__()
        if part_size < MIN_PART_SIZE:
            raise ValueError("S3 parts must be at least 5 MiB")
        self._client = client
        self.bucket = bucket
        self.key = key
        self._part_size = part_size
        extra = {"ContentDisposition": content_disposition} if content_disposition else {}
        self.upload_id: str = client.create_multipart_upload(
            Bucket=bucket, Key=key, ContentType=content_type, **extra
        )["UploadId"]
        self._uploader = _Uploader(self, threads=upload_threads, buffers=1 + upload_threads)
        self._stop = stop
        self._pieces = [
            _Piece(self._uploader, part_size, first_number=1, numbers=MAX_PARTS, held=0, stop=stop)
        ]
        self._finished = False

    @property
    def bytes_written(self) -> int:
        return sum(piece.bytes_written for piece in self._pieces)

    # -- io.RawIOBase -------------------------------------------------------------------------
    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:  # type: ignore[override]
        return self._pieces[0].write(data)

    # -- parallel pieces ----------------------------------------------------------------------
    def split(self, count: int) -> list[_Piece]:
        """Writers for `count` contiguous pieces of the object, in order; call before writing anything."""
        if count < 1 or count > MAX_PARTS // 100:
            raise ValueError(f"split into 1..{MAX_PARTS // 100} pieces, not {count}")
        if self.bytes_written:
            raise ValueError("split() must come before the first write")
        numbers = MAX_PARTS // count
        self._pieces = [
            _Piece(
                self._uploader,
                self._part_size,
                first_number=1 + i * numbers,
                numbers=numbers,
                held=MIN_PART_SIZE if i else 0,
                stop=self._stop,
            )
            for i in range(count)
        ]
        self._uploader.set_buffers(max(count, self._uploader.threads) + 1)
        return list(self._pieces)

    # -- lifecycle ------------------------------------------------------------------------------
    def complete(self) -> None:
        """Upload what is left (stitching the pieces' edges) and make the object visible."""
        self._stitch()
        self._uploader.close()
        self._uploader.raise_if_failed()
        parts = [{"PartNumber": n, "ETag": etag} for n, etag in sorted(self._uploader.etags.items())]
        self._client.complete_multipart_upload(
            Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, MultipartUpload={"Parts": parts}
        )
        self._finished = True

    def abort(self) -> None:
        """Drop every uploaded part; safe to call more than once."""
        if self._finished:
            return
        self._finished = True
        self._uploader.cancel()
        self._client.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None:
            self._abort_quietly(exc)
            return
        try:
            self.complete()
        except BaseException as error:
            self._abort_quietly(error)
            raise

    def _abort_quietly(self, cause: BaseException | None) -> None:
        """Abort without hiding `cause`: when S3 itself is down the abort fails too, and the first error
        is the one worth reporting. The lifecycle rule and the retention sweep remove what is left."""
        try:
            self.abort()
        except Exception as error:
            if cause is not None:
                cause.add_note(f"aborting upload {self.upload_id} failed too ({error}); left to the sweep")

    def _stitch(self) -> None:
        carry = bytearray()  # bytes not in any part yet, in object order
        last_number = 0
        for piece in self._pieces:
            carry = _joined(carry, piece.take_head())
            if piece.shipped:  # the piece's parts follow: the carry goes into its reserved slot first
                if carry:
                    self._uploader.submit(piece.first_number, carry, len(carry), reuse=False)
                    carry = bytearray()
                last_number = piece.last_number
            carry = _joined(carry, piece.take_tail())
        # The last part may be small; an empty object is one empty part.
        if carry or not self._uploader.submitted:
            self._uploader.submit(last_number + 1, carry, len(carry), reuse=False)


def _joined(first: bytearray, second: bytearray) -> bytearray:
    """`first + second`, extending one of them in place rather than copying both."""
    if not first:
        return second
    first += second
    return first


class _Piece(io.RawIOBase):
    """Writes one contiguous piece of the object as whole parts numbered from `first_number`.

    A piece that holds back a head (`held` bytes) leaves its first part number free for the boundary
    part that `MultipartUploadStream._stitch` uploads.
    """

    def __init__(
        self,
        uploader: _Uploader,
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


class _Uploader:
    """Upload threads, the queue feeding them, and the pool of reusable part buffers."""

    def __init__(self, stream: MultipartUploadStream, *, threads: int, buffers: int) -> None:
        self._stream = stream
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
            threading.Thread(target=self._run, name=f"upload-{i}:{stream.key}", daemon=True)
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
            stream = self._stream
            raise UploadError(
                f"upload of part to s3://{stream.bucket}/{stream.key} failed: {self._error}"
            ) from self._error

    def _run(self) -> None:
        client, stream = self._stream._client, self._stream
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
