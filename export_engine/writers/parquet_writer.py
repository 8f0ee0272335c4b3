"""Parquet (zstd) from Arrow record batches: the ADBC driver decodes PostgreSQL's binary COPY.

The schema follows the column types: dates as date32, timestamptz as timestamp[us, UTC], numeric
as decimal128(p, s), arrays as lists. One row group per driver batch (the driver sizes batches by
bytes), so memory stays at a few batches however large the export. The driver decodes the next
batch in a second thread while this one is encoded and compressed (`prefetched`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from export_engine.streaming.prefetch import prefetched
from export_engine.streaming.progress import RowProgress
from export_engine.writers.arrow_types import conform, parquet_schema

if TYPE_CHECKING:
    from psycopg2 import sql

    from export_engine.streaming.rows import RowSource

COMPRESSION = "zstd"


def write_parquet(
    source: RowSource,
    select: sql.Composable,
    params: dict[str, Any],
    sink: Any,
    *,
    progress: RowProgress | None = None,
) -> int:
    progress = progress or RowProgress(None)
    with source.arrow_batches(select, params) as rows:
        schema = parquet_schema(rows.reader.schema)
        # Dictionary-encode text only: on ids, amounts and timestamps it costs time, then falls back anyway.
        text = [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
        # closing the writer writes the footer and leaves `sink` open
        with pq.ParquetWriter(sink, schema, compression=COMPRESSION, use_dictionary=text) as writer:
            for batch in prefetched(rows.reader, lambda batch: conform(batch, schema)):
                writer.write_batch(batch)
                progress.add(batch.num_rows)
    return progress.rows
