"""Seed 001's "Verification" block, run with curl as printed, against the whole stack (real Dagster runs).

Substituted: `$TOKEN` (a JWT of a demo user), `http://localhost:8000` (the test stack's gateway),
`"uuid"` (a real dataset id), `{job_id}` and the signed URL (from the answers before them).
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import time
from pathlib import Path

import psycopg2
import pytest

from api.security import issue_token
from export_engine.settings import DEV_JWT_SECRET

pytestmark = pytest.mark.e2e

USER = "demo-user-72"


def curl(*args: str) -> str:
    done = subprocess.run(
        ["curl", "-sS", "--fail-with-body", *args], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, (done.returncode, done.stdout, done.stderr)
    return done.stdout


def test_the_verification_block_runs_as_printed(api, tmp_path: Path):
    token = issue_token(USER, secret=DEV_JWT_SECRET)
    base = api.stack.api_url

    # Manual test - create export
    created = json.loads(
        curl(
            "-X",
            "POST",
            "-H",
            f"Authorization: Bearer {token}",
            "-H",
            "Content-Type: application/json",
            "-d",
            '{"dataset_id": "transactions", "format": "csv"}',
            f"{base}/api/analytics/exports",
        )
    )
    assert set(created) == {"job_id", "status", "message"}
    assert (created["status"], created["message"]) == ("pending", "Export job created")

    # Poll status (returns signed URL when complete)
    deadline = time.monotonic() + 240  # a hang guard, not a speed check
    while True:
        status = json.loads(
            curl("-H", f"Authorization: Bearer {token}", f"{base}/api/analytics/exports/{created['job_id']}")
        )
        if status["status"] not in ("pending", "running"):
            break
        assert status["download_url"] is None and status["completed_at"] is None, status
        assert time.monotonic() < deadline, status
        time.sleep(1)
    assert status["status"] == "completed", status
    assert (status["dataset_id"], status["dataset_name"], status["format"]) == (
        "transactions",
        "Transactions",
        "csv",
    )

    # Download via signed URL (no auth header needed)
    target = tmp_path / "export.csv"
    curl("-o", str(target), status["download_url"])
    body = target.read_bytes()
    assert len(body) == status["file_size_bytes"]
    lines = list(csv.reader(io.StringIO(body.decode())))  # descriptions may hold line breaks
    date_to = api.get(USER, created["job_id"]).json()["date_to"]  # "today", as the core API shows it
    with psycopg2.connect(api.stack.env["SOURCE_ADMIN_URL"]) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM transactions WHERE user_id = %s AND txn_date <= %s", (USER, date_to)
        )
        (rows,) = cur.fetchone()
    assert len(lines) - 1 == status["row_count"] == rows > 0
    assert lines[0][:3] == ["id", "user_id", "account_id"]
    assert {line[1] for line in lines[1:]} == {USER}
