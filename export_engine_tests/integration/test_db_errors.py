"""Database error strings are logged on outages: they must not carry the bound values (owner ids)."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from export_engine.db.models import Export
from export_engine.db.session import session_factory


def test_a_failed_statement_names_no_bound_value(settings):
    owner = "owner-who-must-not-be-logged"
    with session_factory(settings.database_url)() as session:
        statement = select(Export).where(Export.owner == owner, Export.created_at == "not a timestamp")
        with pytest.raises(DBAPIError) as failure:
            session.execute(statement)
    message = str(failure.value)
    assert "SQL parameters hidden" in message
    assert owner not in message
