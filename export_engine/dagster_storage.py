"""Dagster's PostgreSQL storages, holding their connections instead of opening one per statement.

`dagster_postgres` gives every process NullPool engines (a new PostgreSQL connection for every storage
call) except the webserver, which Dagster switches to a pool (`optimize_for_webserver`). Measured with
`make bench-small`, that was ~75 new connections to the Dagster DB per tiny export (the daemon's run
queue, monitor and sensor loops; each run's event writes in the worker) and most of the CPU PostgreSQL
spent per export: a backend fork and a catalog-cache warm-up per connection. These are the same three
storages with the same config (dagster.yaml `run_storage` / `event_log_storage` / `schedule_storage`),
keeping a small pool in each process: the daemon, the run workers, the code servers.
"""

from __future__ import annotations

import os
import weakref
from typing import Any

from dagster._serdes import ConfigurableClassData
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage
from dagster_postgres.utils import create_pg_engine, get_token_provider_from_config, pg_url_from_config

POOL_SIZE = 2  # connections kept per storage and process; more at once are opened and closed as before
MAX_OVERFLOW = 8
POOL_RECYCLE_SECONDS = 3600


class _Pooled:
    """Swaps the storage's NullPool engine for a pooled one; pre-ping: a restarted server costs no run."""

    _engine: Any
    postgres_url: str

    def _use_pool(self, token_provider: Any) -> None:
        null_pool = self._engine
        self._engine = create_pg_engine(
            self.postgres_url,
            token_provider,
            isolation_level="AUTOCOMMIT",
            pool_size=POOL_SIZE,
            max_overflow=MAX_OVERFLOW,
            pool_recycle=POOL_RECYCLE_SECONDS,
            pool_pre_ping=True,
        )
        null_pool.dispose()
        _POOLED.add(self)

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None, config_value: Any) -> Any:
        return cls(  # type: ignore[call-arg]
            postgres_url=pg_url_from_config(config_value),
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),
            inst_data=inst_data,
            token_provider=get_token_provider_from_config(config_value),
        )

    def optimize_for_webserver(self, statement_timeout: int, pool_recycle: int, max_overflow: int) -> None:
        """The webserver's own pool (with its statement timeout) replaces ours."""
        replaced = self._engine
        super().optimize_for_webserver(statement_timeout, pool_recycle, max_overflow)  # type: ignore[misc]
        replaced.dispose()

    def dispose(self) -> None:
        super().dispose()  # type: ignore[misc]
        self._engine.dispose()


_POOLED: weakref.WeakSet[_Pooled] = weakref.WeakSet()


def _forget_inherited_connections() -> None:
    """In a forked child (a Celery pool process), never use the parent's connections: SQLAlchemy's
    recipe for pools across fork()."""
    for storage in list(_POOLED):
        storage._engine.dispose(close=False)


os.register_at_fork(after_in_child=_forget_inherited_connections)


class PooledPostgresRunStorage(_Pooled, PostgresRunStorage):
    def __init__(
        self, postgres_url: str, should_autocreate_tables: bool = True, inst_data=None, token_provider=None
    ):
        super().__init__(postgres_url, should_autocreate_tables, inst_data, token_provider)
        self._use_pool(token_provider)


class PooledPostgresEventLogStorage(_Pooled, PostgresEventLogStorage):
    def __init__(
        self, postgres_url: str, should_autocreate_tables: bool = True, inst_data=None, token_provider=None
    ):
        super().__init__(postgres_url, should_autocreate_tables, inst_data, token_provider)
        self._use_pool(token_provider)


class PooledPostgresScheduleStorage(_Pooled, PostgresScheduleStorage):
    def __init__(
        self, postgres_url: str, should_autocreate_tables: bool = True, inst_data=None, token_provider=None
    ):
        super().__init__(postgres_url, should_autocreate_tables, inst_data, token_provider)
        self._use_pool(token_provider)
