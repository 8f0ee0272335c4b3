"""A write-only stream that becomes one S3 object through a pipelined multipart upload.

Bytes are gathered into parts; a full part is handed to one background thread that uploads it while
the caller keeps writing. The hand-off queue holds one part, so at most two parts are in memory
besides the one being filled (backpressure instead of unbounded buffering). The part size doubles
every 1,000 parts, so S3's 10,000-part limit never binds (16 MiB parts reach > 1 TB).

The stream takes a boto3 client and knows nothing else about the world.
"""

from __future__ import annotations

import io
import queue
import threading
from typing import Any

MIB = 1024 * 1024
_PARTS_PER_SIZE_STEP = 1000
_STOP = object()


class UploadError(Exception):
    """The background upload failed; carries the S3 error as its cause."""


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
    ) -> None:
        super().__init__()
        if part_size < 5 * MIB:
            raise ValueError("S3 parts must be at least 5 MiB")
        self._client = client
        self.bucket = bucket
        self.key = key
        self._base_part_size = part_size
        extra = {"ContentDisposition": content_disposition} if content_disposition else {}
        self.upload_id: str = client.create_multipart_upload(
            Bucket=bucket, Key=key, ContentType=content_type, **extra
        )["UploadId"]
        self._buffer = bytearray()
        self._part_number = 0
        self._parts: list[dict[str, Any]] = []
        self._error: BaseException | None = None
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=1)
        self._worker = threading.Thread(target=self._upload_parts, name=f"upload:{key}", daemon=True)
        self._worker.start()
        self.bytes_written = 0
        self._finished = False

    # -- io.RawIOBase -------------------------------------------------------------------------
    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        self._raise_if_failed()
        self._buffer += data
        size = len(data)
        self.bytes_written += size
        if len(self._buffer) >= self._current_part_size():
            self._ship(self._buffer)
            self._buffer = bytearray()
        return size

    # -- lifecycle ------------------------------------------------------------------------------
    def complete(self) -> None:
        """Upload what is left and make the object visible."""
        if self._buffer or self._part_number == 0:
            self._ship(self._buffer)
            self._buffer = bytearray()
        self._drain()
        self._raise_if_failed()
        self._client.complete_multipart_upload(
            Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, MultipartUpload={"Parts": self._parts}
        )
        self._finished = True

    def abort(self) -> None:
        """Drop every uploaded part; safe to call more than once."""
        if self._finished:
            return
        self._finished = True
        self._buffer = bytearray()
        self._drain()
        self._client.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id)

    def __enter__(self) -> MultipartUploadStream:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.complete()
        else:
            self.abort()

    # -- internals -------------------------------------------------------------------------------
    def _current_part_size(self) -> int:
        return self._base_part_size << (self._part_number // _PARTS_PER_SIZE_STEP)

    def _ship(self, data: bytearray) -> None:
        self._part_number += 1
        while True:  # wait for room, but notice a dead worker instead of blocking forever
            self._raise_if_failed()
            try:
                self._queue.put((self._part_number, data), timeout=0.5)
                return
            except queue.Full:
                continue

    def _drain(self) -> None:
        if self._worker.is_alive():
            self._queue.put(_STOP)
            self._worker.join()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise UploadError(f"upload of part to s3://{self.bucket}/{self.key} failed: {self._error}") from self._error

    def _upload_parts(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            if self._error is not None:
                continue  # keep draining so the writer never blocks on a dead worker
            part_number, data = item
            try:
                response = self._client.upload_part(
                    Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, PartNumber=part_number, Body=bytes(data)
                )
                self._parts.append({"PartNumber": part_number, "ETag": response["ETag"]})
            except BaseException as exc:  # noqa: BLE001 - handed to the writer thread, re-raised there
                self._error = exc
