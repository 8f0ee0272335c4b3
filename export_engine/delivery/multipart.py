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
The part buffers and upload threads are in `delivery/parts.py`.
"""

from __future__ import annotations

import io
import threading
from types import TracebackType
from typing import Any, Self

from export_engine.delivery.parts import (
    MAX_PARTS,
    MIN_PART_SIZE,
    UPLOAD_THREADS,
    Piece,
    Uploader,
    UploadError,
    UploadStopped,
    joined,
)
from export_engine.streaming.progress import MIB

__all__ = ["MIB", "MultipartUploadStream", "UploadError", "UploadStopped"]


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
        self._uploader = Uploader(
            client, bucket, key, self.upload_id, threads=upload_threads, buffers=1 + upload_threads
        )
        self._stop = stop
        self._pieces = [
            Piece(self._uploader, part_size, first_number=1, numbers=MAX_PARTS, held=0, stop=stop)
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
    def split(self, count: int) -> list[Piece]:
        """Writers for `count` contiguous pieces of the object, in order; call before writing anything."""
        if count < 1 or count > MAX_PARTS // 100:
            raise ValueError(f"split into 1..{MAX_PARTS // 100} pieces, not {count}")
        if self.bytes_written:
            raise ValueError("split() must come before the first write")
        numbers = MAX_PARTS // count
        self._pieces = [
            Piece(
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
            carry = joined(carry, piece.take_head())
            if piece.shipped:  # the piece's parts follow: the carry goes into its reserved slot first
                if carry:
                    self._uploader.submit(piece.first_number, carry, len(carry), reuse=False)
                    carry = bytearray()
                last_number = piece.last_number
            carry = joined(carry, piece.take_tail())
        # The last part may be small; an empty object is one empty part.
        if carry or not self._uploader.submitted:
            self._uploader.submit(last_number + 1, carry, len(carry), reuse=False)
