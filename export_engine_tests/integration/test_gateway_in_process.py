"""The gateway in-process against the real export DB and S3, with a fake launcher instead of Dagster."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, text

from api.launcher import RunLauncher
from api.main import create_app
from api.security import issue_token
from api.services.exports import submit_export
from devstack.processes import free_port
from export_engine.db.session import get_engine, session_factory
from export_engine.runs.submission import UNCONTESTED_SUBMISSION
from export_engine.settings import DEV_JWT_SECRET
from export_engine_tests.api.conftest import FakeLauncher

pytestmark = pytest.mark.integration


@pytest.fixture
def exports_statements(settings) -> Iterator[list[str]]:
    """Every statement the gateway sends that reads the exports table."""
    seen: list[str] = []
    engine = get_engine(settings.database_url)

    def record(conn, cursor, statement, *args) -> None:
        if "FROM exports" in statement:
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine, "before_cursor_execute", record)


def _client(settings, launcher: RunLauncher | None = None, **overrides) -> TestClient:
    app = create_app(settings.model_copy(update=overrides), launcher=launcher or FakeLauncher())
    return TestClient(app, raise_server_exceptions=False)


def test_metrics_read_the_exports_table_once_per_cache_period(settings, exports_statements):
    with _client(settings, metrics_cache_seconds=0) as client:
        for _ in range(3):
            assert client.get("/metrics").status_code == 200
    per_scrape, remainder = divmod(len(exports_statements), 3)
    assert per_scrape > 0 and remainder == 0  # without a cache, every scrape reads the table again

    exports_statements.clear()
    with _client(settings, metrics_cache_seconds=3600) as client:
        for _ in range(5):
            scraped = client.get("/metrics")
            assert scraped.status_code == 200
            assert "export_exports_created_total" in scraped.text
    assert len(exports_statements) == per_scrape  # one computation served all five scrapes


def test_a_new_export_is_submitted_once_and_attached_to_until_it_runs(settings):
    launcher = FakeLauncher()
    owner = f"fake-launcher-{uuid.uuid4()}"
    headers = {"Authorization": f"Bearer {issue_token(owner, secret=DEV_JWT_SECRET)}"}
    body = {"table_name": "transactions", "date_from": "2020-03-01", "date_to": "2020-03-31"}
    with _client(settings, launcher) as client:
        created = client.post("/export", json=body, headers=headers)
        assert created.status_code == 202, created.text
        reference_id = created.json()["reference_id"]
        assert created.json()["status"] == "PENDING"
        assert [(ref, spec.owner) for ref, spec in launcher.submitted] == [(reference_id, owner)]
        assert launcher.looked_first == [False]  # just committed by this gateway: nobody else submitted

        # Later (or without a commit time), another submitter may have launched one: look first.
        spec = launcher.submitted[0][1]
        for committed_at in (time.monotonic() - UNCONTESTED_SUBMISSION.total_seconds(), None):
            submit_export(
                sessions=session_factory(settings.database_url),
                launcher=launcher,
                reference_id=reference_id,
                spec=spec,
                committed_at=committed_at,
            )
        assert launcher.looked_first == [False, True, True]
        del launcher.submitted[1:]

        again = client.post("/export", json=body, headers=headers)
        assert again.status_code == 200, again.text
        assert again.json()["reference_id"] == reference_id
        assert len(launcher.submitted) == 1  # attached: no second run

        early = client.get(f"/export/{reference_id}/download", headers=headers, follow_redirects=False)
        assert early.status_code == 409
        assert early.json()["detail"] == (
            f"export '{reference_id}' is PENDING; only a COMPLETED export has a file"
        )

        canceled = client.delete(f"/export/{reference_id}", headers=headers)
        assert canceled.status_code == 200, canceled.text
        assert canceled.json()["status"] == "CANCELED"
        assert launcher.terminated == ["run-1"]


UNKNOWN_START = (
    "could not find where your data starts (the source database did not answer); "
    "retry later or give date_from"
)


@pytest.mark.parametrize(
    ("datasets", "source_down"),
    [(["transactions"], True), (["accounts", "vanished"], False)],
    ids=["source-unreachable", "table-gone"],
)
def test_a_package_without_date_from_is_503_when_the_first_row_cannot_be_found(
    settings, datasets, source_down
):
    """As for an export: another start date would be another dedup key, so no guess; nothing is written."""
    overrides = (
        {"source_database_url": f"postgresql://nobody@127.0.0.1:{free_port()}/transactions"}
        if source_down
        else {}
    )
    launcher = FakeLauncher()
    owner = f"no-start-{uuid.uuid4()}"
    headers = {"Authorization": f"Bearer {issue_token(owner, secret=DEV_JWT_SECRET)}"}
    with _client(settings, launcher, **overrides) as client:
        response = client.post(
            "/packages", json={"datasets": datasets, "date_to": "2024-01-31"}, headers=headers
        )
    assert response.status_code == 503, response.text
    assert response.json() == {"detail": UNKNOWN_START, "errors": []}
    assert launcher.submitted == []
    with get_engine(settings.database_url).connect() as conn:
        rows = conn.execute(
            text("SELECT count(*) FROM exports WHERE owner = :owner"), {"owner": owner}
        ).scalar()
    assert rows == 0


class _CrashingLauncher(FakeLauncher):
    """A submission that fails in a way the gateway does not expect: only an answer sent before it can be a 202."""

    def submit(self, reference_id: str, spec, *, look_first: bool = True) -> str:
        self.submitted.append((reference_id, spec))
        self.looked_first.append(look_first)
        raise RuntimeError("the launcher crashed")


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/export", {"table_name": "transactions", "date_from": "2020-04-01", "date_to": "2020-04-30"}),
        (
            "/packages",
            {"datasets": ["tags", "transactions"], "date_from": "2020-04-01", "date_to": "2020-04-30"},
        ),
    ],
)
def test_a_new_export_or_package_is_answered_before_its_run_is_submitted(settings, path, body):
    launcher = _CrashingLauncher()
    owner = f"answered-first-{uuid.uuid4()}"
    headers = {"Authorization": f"Bearer {issue_token(owner, secret=DEV_JWT_SECRET)}"}
    with _client(settings, launcher) as client:
        created = client.post(path, json=body, headers=headers)
        assert created.status_code == 202, created.text
        reference_id = created.json()["reference_id"]
        assert created.json()["status"] == "PENDING"
        assert [ref for ref, _ in launcher.submitted] == [reference_id]  # tried once, after the answer
        assert launcher.looked_first == [False]  # just committed: no runs lookup first, as for an export

        canceled = client.delete(f"{path}/{reference_id}", headers=headers)  # no run to terminate
        assert canceled.status_code == 200, canceled.text
        assert canceled.json()["status"] == "CANCELED"
        assert launcher.terminated == []
