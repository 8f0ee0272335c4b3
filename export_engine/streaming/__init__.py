"""Rows and bytes in flight between the database and object storage: no Dagster, no psycopg here."""

from export_engine.streaming.progress import MIB, ProgressTap, RowProgress, Throttle, row_chunks
from export_engine.streaming.rows import ArrowRows, RowSource

__all__ = ["MIB", "ArrowRows", "ProgressTap", "RowProgress", "RowSource", "Throttle", "row_chunks"]
