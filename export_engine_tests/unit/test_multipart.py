"""The multipart stream against a tiny in-memory S3 client: part sizes, stitching, failure paths."""

from __future__ import annotations

import threading
import tracemalloc

import pytest

from export_engine.delivery.multipart import (
    MIB,
    MIN_PART_SIZE,
    UPLOAD_THREADS,
    MultipartUploadStream,
    UploadError,
    UploadStopped,
)


class FakeS3:
    """Keeps each part's bytes (or only its size) and checks what S3 would check on completion."""

    def __init__(self, *, keep_bytes: bool = True, fail_on_part: int | None = None) -> None:
        self.keep_bytes = keep_bytes
        self.fail_on_part = fail_on_part
        self.parts: dict[int, bytes | int] = {}
        self.completed: bytes | list[int] | None = None
        self.aborted = False
        self._lock = threading.Lock()

    def create_multipart_upload(self, **kwargs):
        return {"UploadId": "upload-1"}

    def upload_part(self, *, PartNumber, Body, **kwargs):
        if PartNumber == self.fail_on_part:
            raise ConnectionError("connection reset by peer")
        with self._lock:
            self.parts[PartNumber] = bytes(Body) if self.keep_bytes else len(Body)
        return {"ETag": f'"etag-{PartNumber}"'}

    def complete_multipart_upload(self, *, MultipartUpload, **kwargs):
        numbers = [p["PartNumber"] for p in MultipartUpload["Parts"]]
        assert numbers == sorted(numbers) and len(numbers) <= 10_000
        assert all(1 <= n <= 10_000 for n in numbers)
        sizes = [self._size(n) for n in numbers]
        assert all(size >= MIN_PART_SIZE for size in sizes[:-1]), "a part other than the last is under 5 MiB"
        self.completed = b"".join(self.parts[n] for n in numbers) if self.keep_bytes else sizes

    def abort_multipart_upload(self, **kwargs):
        self.aborted = True

    def _size(self, number: int) -> int:
        part = self.parts[number]
        return part if isinstance(part, int) else len(part)


def _stream(client: FakeS3, part_size: int = 5 * MIB) -> MultipartUploadStream:
    return MultipartUploadStream(client, "bucket", "key", part_size=part_size)


def _pattern(size: int, seed: int) -> bytes:
    block = bytes((seed * 31 + i) % 251 for i in range(251))
    return (block * (size // len(block) + 1))[:size]


def test_part_size_doubles_after_1000_parts():
    client = FakeS3(keep_bytes=False)
    block = b"x" * MIB
    with _stream(client) as stream:
        for _ in range(1000 * 5 + 10 + 3):  # 1,000 parts of 5 MiB, one of 10 MiB, then 3 MiB more
            stream.write(block)
    sizes = client.completed
    assert sizes[:1000] == [5 * MIB] * 1000
    assert sizes[1000] == 10 * MIB
    assert sizes[1001:] == [3 * MIB]
    assert stream.bytes_written == sum(sizes)


@pytest.mark.parametrize(
    "piece_sizes",
    [
        [12 * MIB, 3 * MIB, 0, 7 * MIB],  # long, short, empty, medium
        [0, 0, 11 * MIB],  # everything in the last piece
        [4 * MIB, 4 * MIB],  # both pieces under one part: one part in all
        [5 * MIB, 5 * MIB, 5 * MIB],  # pieces exactly one head each
        [0, 0],  # nothing at all: one empty part
    ],
)
def test_split_pieces_become_one_object_in_order(piece_sizes):
    client = FakeS3()
    expected = [_pattern(size, seed) for seed, size in enumerate(piece_sizes)]
    with _stream(client) as stream:
        pieces = stream.split(len(piece_sizes))
        threads = [
            threading.Thread(target=_write_in_chunks, args=(piece, data))
            for piece, data in zip(pieces, expected, strict=True)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert client.completed == b"".join(expected)
    assert stream.bytes_written == sum(piece_sizes)


def _write_in_chunks(piece, data: bytes, chunk: int = 700_001) -> None:
    for start in range(0, len(data), chunk):
        piece.write(memoryview(data)[start : start + chunk])


def test_unsplit_stream_matches_what_was_written():
    client = FakeS3()
    data = _pattern(17 * MIB + 5, 3)
    with _stream(client) as stream:
        _write_in_chunks(stream, data, chunk=1_000_003)
    assert client.completed == data
    assert len(client.parts) == 4  # 5 + 5 + 5 + 2 MiB and 5 bytes


def test_empty_stream_is_one_empty_part():
    client = FakeS3()
    with _stream(client):
        pass
    assert client.completed == b""


def test_failed_part_aborts_and_names_the_object():
    client = FakeS3(fail_on_part=2)
    with pytest.raises(UploadError, match="s3://bucket/key") as info, _stream(client) as stream:
        for _ in range(40):
            stream.write(b"y" * MIB)
    assert isinstance(info.value.__cause__, ConnectionError)
    assert client.aborted and client.completed is None


def test_memory_is_a_fixed_set_of_buffers():
    """60 MiB through 5 MiB parts: the peak of Python allocations stays within the part buffers
    (one being filled plus one per upload thread) and a chunk, however many parts went by."""
    client = FakeS3(keep_bytes=False)
    chunk = b"z" * MIB
    tracemalloc.start()
    try:
        with _stream(client) as stream:
            for _ in range(60):
                stream.write(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert client.completed is not None and sum(client.completed) == 60 * MIB
    assert peak < (1 + UPLOAD_THREADS + 1) * 5 * MIB, f"peak {peak / MIB:.1f} MiB"


def test_split_after_writing_is_refused():
    with _stream(FakeS3()) as stream:
        stream.write(b"a")
        with pytest.raises(ValueError, match="before the first write"):
            stream.split(2)


@pytest.mark.parametrize("pieces", [1, 2])
def test_stop_event_ends_the_next_write_and_aborts(pieces):
    """The op sets `stop` from its heartbeat thread when the export was canceled under it."""
    client = FakeS3()
    stop = threading.Event()
    written = 0
    with (
        pytest.raises(UploadStopped),
        MultipartUploadStream(client, "bucket", "key", part_size=5 * MIB, stop=stop) as stream,
    ):
        writers = stream.split(pieces) if pieces > 1 else [stream]
        for i in range(20):
            if i == 7:
                stop.set()
            writers[i % pieces].write(b"s" * MIB)
            written += 1
    assert written == 7
    assert client.aborted and client.completed is None
