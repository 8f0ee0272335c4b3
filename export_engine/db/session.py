"""Engine and session factory for the export DB, one per URL per process."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache

from sqlalchemy import Engine, create_engine, func, select
from sqlalchemy.orm import Session, sessionmaker


def sqlalchemy_url(url: str) -> str:
    """Accept plain libpq URLs (`postgresql://`) and pin the psycopg2 driver."""
    for prefix in ("postgresql+psycopg2://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix) :]
    return url


@lru_cache(maxsize=8)
def get_engine(url: str) -> Engine:
    return create_engine(
        sqlalchemy_url(url),
        pool_pre_ping=True,
        hide_parameters=True,  # error strings (logged on outages) would carry owner ids otherwise
        pool_size=10,
        max_overflow=20,
        pool_timeout=10,
        connect_args={"connect_timeout": 5, "application_name": "export-engine"},
    )


def session_factory(url: str) -> sessionmaker:
    return sessionmaker(get_engine(url), expire_on_commit=False)


def db_now(session: Session) -> datetime:
    """The database's clock, the one every stored timestamp comes from."""
    now: datetime = session.execute(select(func.now())).scalar_one()
    return now
