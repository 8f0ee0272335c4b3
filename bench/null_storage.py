"""`--sink null`: the engine's own multipart stream, with an S3 client that keeps nothing.

`NullStorage.start_upload` returns the real `MultipartUploadStream` (part buffers, upload threads,
stitching of parallel pieces), so `--sink null` measures all of our code and none of the S3 server's.
The client counts parts and bytes; with `fingerprint=True` it also keeps a hash of the object that
does not depend on where the part boundaries fall, so two exports can be compared byte for byte
without storing them.
"""

from __future__ import annotations

import threading
from typing import Any

from export_engine.delivery.multipart import MultipartUploadStream
from export_engine.streaming import MIB

_PRIME = (1 << 127) - 1  # the object read as one big-endian integer, modulo a Mersenne prime


class NullS3Client:
    def __init__(self, *, fingerprint: bool = False) -> None:
        self.fingerprint = fingerprint
        self.parts: dict[int, tuple[int, int]] = {}  # number -> (size, object-integer of the part mod prime)
        self.object_size = 0
        self.object_fingerprint: str | None = None
        self._lock = threading.Lock()

    def create_multipart_upload(self, **_: Any) -> dict[str, str]:
        return {"UploadId": "null"}

    def upload_part(self, *, PartNumber: int, Body: Any, **_: Any) -> dict[str, str]:
        value = int.from_bytes(Body, "big") % _PRIME if self.fingerprint else 0
        with self._lock:
            self.parts[PartNumber] = (len(Body), value)
        return {"ETag": f'"null-{PartNumber}"'}

    def complete_multipart_upload(self, *, MultipartUpload: dict[str, Any], **_: Any) -> None:
        numbers = [part["PartNumber"] for part in MultipartUpload["Parts"]]
        combined = 0
        for number in numbers:
            size, value = self.parts[number]
            combined = (combined * pow(256, size, _PRIME) + value) % _PRIME
        self.object_size = sum(self.parts[n][0] for n in numbers)
        self.object_fingerprint = f"{self.object_size}:{combined:032x}" if self.fingerprint else None

    def abort_multipart_upload(self, **_: Any) -> None:
        self.parts.clear()


class NullStorage:
    """Stands in for `S3StorageResource` where `run_export` uses it: `start_upload` only."""

    bucket = "null"

    def __init__(self, *, part_size_mb: int, fingerprint: bool = False) -> None:
        self.part_size_mb = part_size_mb
        self.client = NullS3Client(fingerprint=fingerprint)

    def start_upload(
        self, key: str, *, content_type: str, filename: str, stop: threading.Event | None = None
    ) -> MultipartUploadStream:
        return MultipartUploadStream(
            self.client,
            self.bucket,
            key,
            part_size=self.part_size_mb * MIB,
            content_type=content_type,
            stop=stop,
        )
