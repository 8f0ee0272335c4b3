"""A client that stops reading a stream: the query is canceled on the source, the session released.

A real HTTP server (uvicorn in a thread) and a real socket, because an in-process test client reads
every answer to its end. The `slow` dataset streams a row every ~2 ms while armed.
"""

from __future__ import annotations

import threading
import time

import httpx
import psycopg2
import pytest
import uvicorn

from api.main import create_app
from api.security import issue_token
from devstack.processes import free_port
from export_engine.settings import DEV_JWT_SECRET
from export_engine_tests import faults
from export_engine_tests.helpers import NoDagster


@pytest.fixture
def server(settings):
    port = free_port()
    app = create_app(settings.model_copy(update={"stream_max_rows": 20_000}), launcher=NoDagster())
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield app, f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join()


def _streaming_sessions(admin_url: str) -> list[tuple]:
    with psycopg2.connect(admin_url) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT pid, state, query FROM pg_stat_activity "
            "WHERE application_name = 'export-engine-run' AND query LIKE '%%slow_transactions%%'"
        )
        return cur.fetchall()


def test_a_client_that_goes_away_cancels_the_query_and_frees_the_slot(server, stack):
    app, url = server
    admin = stack.env["SOURCE_ADMIN_URL"]
    # ~8,000 rows: with the view armed the count and then the COPY each crawl for ~16 s (a row every 2 ms)
    body = {"table_name": "slow", "date_from": "2019-01-01", "date_to": "2019-09-30", "format": "csv"}
    headers = {"Authorization": f"Bearer {issue_token('USD', secret=DEV_JWT_SECRET)}"}
    slots = app.state.stream_slots
    with httpx.Client(base_url=url, timeout=60) as client:
        try:
            faults.arm(admin, "slow", 300)
            with client.stream("POST", "/export/stream", json=body, headers=headers) as response:
                assert response.status_code == 200
                first = next(response.iter_bytes())
                assert first.startswith(b"id,user_id,account_id,txn_date")
                assert _streaming_sessions(admin), "the COPY should be running"
            # the connection is closed here, mid-file
            deadline = time.monotonic() + 60  # a bound against a hang, not a latency check
            while _streaming_sessions(admin) or slots.in_use:
                assert time.monotonic() < deadline, _streaming_sessions(admin)
                time.sleep(0.2)
        finally:
            faults.disarm(admin, "slow")
    metrics = httpx.get(f"{url}/metrics").text
    assert 'export_stream_requests_total{format="csv",outcome="disconnected"} 1.0' in metrics


@pytest.fixture
def short_deadline_server(settings):
    port = free_port()
    app = create_app(
        settings.model_copy(update={"stream_max_rows": 20_000, "stream_max_seconds": 3}), launcher=NoDagster()
    )
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield app, f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join()


def test_a_reader_that_stays_but_does_not_finish_is_cut_off_at_the_deadline(short_deadline_server, stack):
    """Review 2026-12-07 N7: a client that keeps the connection open but reads slowly (here: not at all)
    held a stream slot and a REPEATABLE READ snapshot on the source for as long as it liked. Past
    `STREAM_MAX_SECONDS` the query is canceled, the slot freed, and the answer broken off (never a
    short file that looks complete)."""
    app, url = short_deadline_server
    admin = stack.env["SOURCE_ADMIN_URL"]
    body = {"table_name": "slow", "date_from": "2019-01-01", "date_to": "2019-09-30", "format": "csv"}
    headers = {"Authorization": f"Bearer {issue_token('USD', secret=DEV_JWT_SECRET)}"}
    slots = app.state.stream_slots
    with httpx.Client(base_url=url, timeout=60) as client:
        try:
            faults.arm(admin, "slow", 300)
            with client.stream("POST", "/export/stream", json=body, headers=headers) as response:
                assert response.status_code == 200
                chunks = response.iter_bytes()
                assert next(chunks).startswith(b"id,user_id,account_id,txn_date")
                while _streaming_sessions(admin) or slots.in_use:  # the client holds on, reading nothing
                    time.sleep(0.2)
                with pytest.raises(httpx.RemoteProtocolError, match="incomplete"):
                    for _ in chunks:
                        pass
        finally:
            faults.disarm(admin, "slow")
    metrics = httpx.get(f"{url}/metrics").text
    assert 'export_stream_requests_total{format="csv",outcome="deadline"} 1.0' in metrics
