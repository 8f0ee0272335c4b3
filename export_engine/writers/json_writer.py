"""JSON lines and a JSON array, both built by PostgreSQL (`row_to_json`) and streamed through COPY.

`jsonl` is the COPY output as is: one object per line. `json` wraps the same stream in `JsonArray`,
which writes `[`, the objects joined by `,\\n`, then `]` (`[]` for no rows). JSON text never contains
a raw newline, so every newline in the stream ends a row. psycopg2 writes each COPY row with its own
call, so the array sits behind a 1 MiB buffer: it rewrites one chunk per megabyte, not one per row
(that per-row Python call cost 5 CPU-s per 5M rows).
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

from export_engine.core.query import copy_json_lines
from export_engine.streaming import row_chunks

if TYPE_CHECKING:
    from psycopg2 import sql

    from export_engine.streaming.rows import RowSource


class JsonArray(io.RawIOBase):
    """Turns newline-terminated JSON values into one JSON array; call `close_array()` at the end."""

    def __init__(self, sink: Any) -> None:
        super().__init__()
        self._sink = sink
        self._started = False
        self._row_ended = False  # the last chunk ended a row: a separator is due before the next byte

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:  # type: ignore[override]
        chunk = bytes(data)
        if not chunk:
            return 0
        head = b"" if self._started else b"["
        if self._row_ended:
            head += b",\n"
        self._started = True
        self._row_ended = chunk.endswith(b"\n")
        body = chunk[:-1] if self._row_ended else chunk
        self._sink.write(head + body.replace(b"\n", b",\n"))
        return len(chunk)

    def close_array(self) -> None:
        self._sink.write(b"]" if self._started else b"[]")


def write_jsonl(source: RowSource, select: sql.Composable, params: dict[str, Any], sink: Any) -> int:
    return source.stream_copy(copy_json_lines(select), params, sink)


def write_json(source: RowSource, select: sql.Composable, params: dict[str, Any], sink: Any) -> int:
    array = JsonArray(sink)
    chunks = row_chunks(array)
    rows = source.stream_copy(copy_json_lines(select), params, chunks)
    chunks.flush()
    array.close_array()
    return rows
