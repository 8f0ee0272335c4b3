"""Dagster's PostgreSQL storages, holding their connections instead of opening one per statement.

`dagster_postgres` gives every process NullPool engines (a new PostgreSQL connection for every storage
call) except the webserver, which Dagster switches to a pool (`optimize_for_webserver`). Measured with
`make bench-small`, that was ~75 new connections to the Dagster DB per tiny export (the daemon's run
queue, monitor and sensor loops; each run's event writes in the worker) and most of the CPU PostgreSQL
spent per export: a backend fork and a catalog-cache warm-up per connection. These are the same three
storages with the same config (dagster.yaml `run_storage` / `event_log_storage` / `schedule_storage`),
keeping a small pool in each process: the daemon, the run workers, the code servers.

Two more per-call costs are removed the same way, both measured with py-spy during `make bench-small`:
- Dagster asks the database's catalog whether its own schema has a column or a table (SQLAlchemy
  reflection: several `pg_catalog` queries) on most run reads and every run event, in every process
  (6-8 % of the webserver's and the daemon's CPU). A schema only moves forward (`dagster instance
  migrate`), so a fact once true is remembered for the process's life.
- The webserver's own pool holds one connection, so every concurrent GraphQL call past the first
  opened and closed a connection (~2.5 per export launched). It keeps `WEBSERVER_POOL_SIZE`.
"""

from __future__ import annotations

import functools
import os
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

from dagster._serdes import ConfigurableClassData
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage
from dagster_postgres.utils import (
    create_pg_engine,
    get_token_provider_from_config,
    pg_url_from_config,
    set_pg_statement_timeout,
)
from sqlalchemy import event
from sqlalchemy.engine import Connection

POOL_SIZE = 2  # connections kept per storage and process; more at once are opened and closed as before
MAX_OVERFLOW = 8
POOL_RECYCLE_SECONDS = 3600
WEBSERVER_POOL_SIZE = 4  # the GraphQL calls it serves at once in a burst of launches


class _Pooled:
    """Swaps the storage's NullPool engine for a pooled one; pre-ping: a restarted server costs no run."""

    _engine: Any
    _token_provider: Any
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
        """Dagster's webserver settings (autocommit, its statement timeout and overflow), with a pool
        that holds `WEBSERVER_POOL_SIZE` connections instead of one, and pre-ping: Dagster's own pool has
        none, so after a PostgreSQL restart the gateway's first `launchRun` ran on a dead connection and
        answered 500 (e2e/test_dagster_storage_restart.py)."""
        replaced = self._engine
        kwargs: dict[str, Any] = {
            "isolation_level": "AUTOCOMMIT",
            "pool_size": WEBSERVER_POOL_SIZE,
            "pool_recycle": pool_recycle,
            "max_overflow": max_overflow,
            "pool_pre_ping": True,
        }
        if options := replaced.url.query.get("options"):
            kwargs["connect_args"] = {"options": options}
        self._engine = create_pg_engine(self.postgres_url, self._token_provider, **kwargs)
        event.listen(
            self._engine,
            "connect",
            lambda connection, _: set_pg_statement_timeout(connection, statement_timeout),
        )
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


_Probe = TypeVar("_Probe", bound=Callable[..., bool])


def _remembered_once_true(probe: _Probe) -> _Probe:
    """A schema probe that stops asking the database once it said yes (per storage and arguments; an
    open connection passed in is not part of the question)."""

    @functools.wraps(probe)
    def remembered(self: Any, *args: Any) -> bool:
        question = (probe.__name__, *(a for a in args if not isinstance(a, Connection)))
        known: set[tuple[Any, ...]] = self.__dict__.setdefault("_schema_facts", set())
        if question in known:
            return True
        answer = probe(self, *args)
        if answer:
            known.add(question)
        return answer

    return remembered  # type: ignore[return-value]


def _remember_schema_facts(cls: type, probes: tuple[str, ...]) -> None:
    for name in probes:
        setattr(cls, name, _remembered_once_true(getattr(cls, name)))


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


_remember_schema_facts(
    PooledPostgresRunStorage,
    (
        "has_run_stats_index_cols",
        "has_bulk_actions_selector_cols",
        "has_backfill_id_column",
        "has_bulk_action_job_name_column",
        "has_backfill_tags_table",
    ),
)
_remember_schema_facts(
    PooledPostgresEventLogStorage,
    ("has_asset_key_col", "has_asset_key_index_cols", "has_default_pool_limit_col"),
)
_remember_schema_facts(
    PooledPostgresScheduleStorage,
    ("_has_instigators_table", "_has_asset_daemon_asset_evaluations_table", "has_secondary_index_table"),
)
