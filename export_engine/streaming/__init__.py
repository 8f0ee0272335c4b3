"""Byte streams between the database and object storage: no Dagster, no psycopg here."""

from export_engine.streaming.multipart import MIB, MultipartUploadStream, UploadError, UploadStopped
from export_engine.streaming.progress import ProgressTap, RowProgress, Throttle, row_chunks

__all__ = [
    "MIB",
    "MultipartUploadStream",
    "ProgressTap",
    "RowProgress",
    "Throttle",
    "UploadError",
    "UploadStopped",
    "row_chunks",
]
