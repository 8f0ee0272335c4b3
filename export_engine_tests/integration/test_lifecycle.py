"""The state machine against the real export DB: fenced runs, guarded transitions, the database's clock,
DELETE deciding on the row as it is now, and reuse only of final data with life left."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select, text

from api.schemas import ExportRequest
from api.security import Principal
from api.services.cancellation import cancel_export
from api.services.export_reads import signed_download
from api.services.exports import ReusePolicy, create_export, submit_export
from export_engine.core.catalog import load_catalog
from export_engine.core.export_spec import ExportSpec
from export_engine.db.models import Export
from export_engine.db.session import session_factory
from export_engine.lifecycle import transitions
from export_engine.settings import Settings
from export_engine_tests.helpers import export_row

STALE = timedelta(seconds=30)


class FakeLauncher:
    """Records what the gateway would hand to Dagster."""

    def __init__(self) -> None:
        self.submitted: list[str] = []
        self.terminated: list[str] = []

    def submit(self, reference_id: str, spec: ExportSpec, *, look_first: bool = True) -> str:
        self.submitted.append(reference_id)
        return f"run-for-{reference_id}"

    def terminate(self, run_id: str) -> None:
        self.terminated.append(run_id)


@pytest.fixture
def sessions(settings):
    return session_factory(settings.database_url)


def _pending(sessions, owner: str | None = None, **columns) -> tuple[ExportSpec, str]:
    spec = ExportSpec(
        "transactions", date(2019, 1, 1), date(2019, 1, 31), owner=owner or f"fsm-{uuid.uuid4()}"
    )
    ref = str(uuid.uuid4())
    with sessions.begin() as session:
        session.add(export_row(spec, ref, status="PENDING", **columns))
    return spec, ref


def _row(sessions, ref: str) -> Export:
    with sessions() as session:
        return session.get(Export, ref)


def _complete(session, ref: str, run: str, key: str = "k") -> bool:
    return transitions.complete(
        session, ref, run, s3_key=key, row_count=1, file_size_bytes=1, retention=timedelta(hours=24)
    )


def test_a_second_run_cannot_take_a_live_runs_export_nor_write_to_it(sessions):
    _, ref = _pending(sessions)
    with sessions.begin() as s:
        assert transitions.start(s, ref, "run-a", stale_after=STALE) is not None
    with sessions.begin() as s:
        assert transitions.start(s, ref, "run-b", stale_after=STALE) is None  # run-a beats: fenced
        assert not transitions.beat(s, ref, "run-b", 10)
        assert not _complete(s, ref, "run-b")
        assert not transitions.fail(s, ref, "b says no", run_id="run-b")
    row = _row(sessions, ref)
    assert (row.status, row.dagster_run_id, row.error) == ("RUNNING", "run-a", None)


def test_a_run_takes_over_from_a_finished_or_silent_holder_and_the_old_one_loses_loudly(sessions):
    _, ref = _pending(sessions)
    with sessions.begin() as s:
        transitions.start(s, ref, "run-a", stale_after=STALE)
    with sessions.begin() as s:  # Dagster says run-a finished (failed, deleted): run-b may take over
        claim = transitions.start(s, ref, "run-b", stale_after=STALE, finished_holder="run-a")
        assert claim is not None and claim.export.attempts == 2
    with sessions.begin() as s:
        assert not transitions.beat(s, ref, "run-a", 5)  # the old run stops at its next heartbeat
        assert not _complete(s, ref, "run-a", key="a-key")  # ... and can never complete
        assert _complete(s, ref, "run-b", key="b-key")
    row = _row(sessions, ref)
    assert (row.status, row.s3_key, row.dagster_run_id) == ("COMPLETED", "b-key", "run-b")

    _, ref2 = _pending(sessions)
    with sessions.begin() as s:
        transitions.start(s, ref2, "run-a", stale_after=STALE)
        s.execute(
            text("UPDATE exports SET heartbeat_at = now() - interval '31 seconds' WHERE reference_id = :r"),
            {"r": ref2},
        )
    with sessions.begin() as s:
        assert transitions.start(s, ref2, "run-b", stale_after=STALE) is not None  # silent past the timeout


def test_timestamps_come_from_the_database_clock(sessions):
    _, ref = _pending(sessions)
    with sessions.begin() as s:
        claim = transitions.start(s, ref, "run-a", stale_after=STALE)
        db_now = s.scalar(select(func.now()))
    assert claim.export.started_at == db_now == claim.export.heartbeat_at
    assert _row(sessions, ref).created_at <= db_now


def test_terminal_states_are_final(sessions):
    _, ref = _pending(sessions)
    with sessions.begin() as s:
        transitions.start(s, ref, "run-a", stale_after=STALE)
        assert _complete(s, ref, "run-a")
    with sessions.begin() as s:
        assert transitions.cancel(s, ref) is None
        assert not transitions.fail(s, ref, "late", run_id="run-a")
        assert transitions.start(s, ref, "run-c", stale_after=STALE, finished_holder="run-a") is None
    assert _row(sessions, ref).status == "COMPLETED"


def test_a_newer_snapshot_supersedes_older_files_of_the_key(sessions):
    owner = f"fsm-{uuid.uuid4()}"
    _, old = _pending(sessions, owner)
    _, new = _pending(sessions, owner)
    for ref, run in ((old, "run-old"), (new, "run-new")):
        with sessions.begin() as s:
            transitions.start(s, ref, run, stale_after=STALE)
    with sessions.begin() as s:  # the newer snapshot finishes first; the older one must not win
        assert _complete(s, new, "run-new", key="new")
    with sessions.begin() as s:
        assert _complete(s, old, "run-old", key="old")
    assert (_row(sessions, old).status, _row(sessions, new).status) == ("SUPERSEDED", "COMPLETED")


def test_delete_decides_on_the_row_as_it_is_now_not_the_sessions_stale_copy(sessions, storage):
    """The review's A3: DELETE loaded RUNNING, the op completed, DELETE overwrote COMPLETED with CANCELED
    and left the file in S3 forever. Now the file is deleted and the export EXPIRED."""
    spec, ref = _pending(sessions)
    key = spec.object_key(ref, "run-a")
    storage.client.put_object(Bucket=storage.bucket, Key=key, Body=b"id\n1\n")
    with sessions.begin() as s:
        transitions.start(s, ref, "run-a", stale_after=STALE)
    gateway = sessions()
    assert gateway.get(Export, ref).status == "RUNNING"  # in the gateway session's identity map
    gateway.rollback()
    with sessions.begin() as s:  # the op completes in between
        assert _complete(s, ref, "run-a", key=key)

    launcher = FakeLauncher()
    after = cancel_export(
        session=gateway, principal=Principal(spec.owner), reference_id=ref, launcher=launcher, storage=storage
    )

    assert after.status == "EXPIRED"
    assert not storage.exists(key)
    assert launcher.terminated == []


def test_cancel_of_a_running_export_terminates_its_run(sessions, storage):
    spec, ref = _pending(sessions)
    with sessions.begin() as s:
        transitions.start(s, ref, "run-a", stale_after=STALE)
    launcher = FakeLauncher()
    with sessions() as gateway:
        after = cancel_export(
            session=gateway,
            principal=Principal(spec.owner),
            reference_id=ref,
            launcher=launcher,
            storage=storage,
        )
    assert (after.status, after.error) == ("CANCELED", "canceled by its owner")
    assert launcher.terminated == ["run-a"]
    with sessions.begin() as s:
        assert not transitions.beat(s, ref, "run-a", 1)  # the op stops at its next heartbeat


# -- reuse only final data, and only files with life left --------------------------------------------
D = date(2026, 12, 3)


def _at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def _request(date_to: date = D, **extra) -> ExportRequest:
    return ExportRequest(
        table_name="transactions", date_from="2026-11-01", date_to=date_to.isoformat(), **extra
    )


def _finished_file(
    sessions, storage, owner: str, *, date_to: date, started_at: datetime, expires_at: datetime
) -> str:
    dataset = load_catalog(Settings.model_fields["catalog_path"].default).get("transactions")
    spec = ExportSpec.for_dataset(
        dataset, owner=owner, date_from=date(2026, 11, 1), date_to=date_to
    )  # as the gateway
    ref = str(uuid.uuid4())
    key = spec.object_key(ref, "run-1")
    storage.client.put_object(Bucket=storage.bucket, Key=key, Body=b"id\n")
    with sessions.begin() as s:
        s.add(
            export_row(
                spec,
                ref,
                status="COMPLETED",
                s3_key=key,
                started_at=started_at,
                completed_at=started_at + timedelta(minutes=1),
                object_expires_at=expires_at,
            )
        )
    return ref


def _post(
    sessions, storage, settings, owner: str, request: ExportRequest, now: datetime, lag_hours: float = 0
):
    launcher = FakeLauncher()
    policy = ReusePolicy(
        timezone="UTC", settlement_lag=timedelta(hours=lag_hours), min_life=timedelta(hours=1)
    )
    with sessions() as session:
        result = create_export(
            session=session,
            principal=Principal(owner),
            request=request,
            storage=storage,
            catalog=load_catalog(settings.catalog_path),
            policy=policy,
            now=now,
        )
    if result.to_submit is not None:  # as the route does once it has answered
        submit_export(
            sessions=sessions,
            launcher=launcher,
            reference_id=result.export.reference_id,
            spec=result.to_submit,
            committed_at=result.committed_at,
        )
    return result, launcher


def test_a_file_made_while_its_range_was_still_open_is_never_reused_the_next_day(sessions, storage, settings):
    """The review's A1: made on D at 10:00 for a range ending D; asked again at D+1 00:05 → a new export."""
    owner = f"final-{uuid.uuid4()}"
    partial = _finished_file(
        sessions, storage, owner, date_to=D, started_at=_at(D, 10), expires_at=_at(D + timedelta(days=5), 0)
    )
    result, launcher = _post(
        sessions, storage, settings, owner, _request(), now=_at(D + timedelta(days=1), 0, 5)
    )
    assert result.outcome == "created" and result.export.reused_from_ref is None
    assert launcher.submitted == [result.export.reference_id]

    # A file whose snapshot started after D ended is final: the next identical request reuses it.
    final = _finished_file(
        sessions,
        storage,
        owner,
        date_to=D,
        started_at=_at(D + timedelta(days=1), 0, 1),
        expires_at=_at(D + timedelta(days=5), 0),
    )
    again, launcher = _post(
        sessions, storage, settings, owner, _request(), now=_at(D + timedelta(days=1), 0, 10)
    )
    assert (again.outcome, again.export.reused_from_ref) == ("reused", final)
    assert again.export.reused_from_ref != partial and launcher.submitted == []


def test_the_settlement_lag_keeps_recent_days_unfinal(sessions, storage, settings):
    owner = f"final-{uuid.uuid4()}"
    _finished_file(
        sessions,
        storage,
        owner,
        date_to=D,
        started_at=_at(D + timedelta(days=1), 1),
        expires_at=_at(D + timedelta(days=5), 0),
    )
    # With a 24 h lag, D's rows may still go pending → posted until D+2 00:00: not reused before that.
    early, _ = _post(
        sessions, storage, settings, owner, _request(), now=_at(D + timedelta(days=1), 12), lag_hours=24
    )
    assert early.outcome == "created"


def test_a_file_with_too_little_life_left_is_not_reused_and_links_never_outlive_files(
    sessions, storage, settings
):
    owner = f"final-{uuid.uuid4()}"
    now = _at(D, 12)
    past = D - timedelta(days=10)
    _finished_file(
        sessions, storage, owner, date_to=past, started_at=_at(D, 1), expires_at=now + timedelta(minutes=30)
    )
    dying, _ = _post(sessions, storage, settings, owner, _request(date_to=past), now=now)
    assert dying.outcome == "created"  # 30 min left < the 1 h a reuse needs
    with sessions.begin() as s:  # (or the next request would attach to it)
        transitions.fail(s, dying.export.reference_id, "not needed", run_id=dying.export.dagster_run_id)

    healthy = _finished_file(
        sessions, storage, owner, date_to=past, started_at=_at(D, 2), expires_at=now + timedelta(hours=3)
    )
    reuse, _ = _post(sessions, storage, settings, owner, _request(date_to=past), now=now)
    assert reuse.export.reused_from_ref == healthy
    url, expires_at = signed_download(reuse.export, storage=storage, ttl_seconds=24 * 3600, now=now)
    assert expires_at == now + timedelta(hours=3)  # capped at the file's life, not now + 24 h
    assert "Expires=10800" in url or "X-Amz-Expires=10800" in url
