"""The protocol writers read rows through, implemented by the source database and its snapshots."""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import pyarrow as pa
    from psycopg2 import sql


@dataclass(frozen=True)
class ArrowRows:
    """A query result as Arrow record batches; `total` is the exact row count when it was asked for."""

    reader: pa.RecordBatchReader
    total: int | None = None


class RowSource(Protocol):
    """What a writer needs from the source database (see `SourceDatabaseMethods`)."""

    def stream_copy(self, copy_sql: sql.Composable, params: dict[str, Any], sink: Any) -> int: ...

    def arrow_batches(
        self, select: sql.Composable, params: dict[str, Any], *, count: bool = False
    ) -> AbstractContextManager[ArrowRows]: ...
