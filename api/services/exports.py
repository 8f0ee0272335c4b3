"""Creating and reading exports: the dedup rules live here, and the database enforces them.

The rules themselves are `export_engine.core.dedup`; this module gathers the facts they need (the newest
finished file of the key made from final data, whether its object still exists and how long it has
left, the export of final data in flight) and acts on the decision through `lifecycle`. A REUSE is a
new COMPLETED row pointing at the file (`reused_from_ref`); an ATTACH answers the export in flight;
a NEW export is committed PENDING, then handed to Dagster.

Rules 3-5 run under a transaction-scoped advisory lock on the key, so concurrent identical requests
serialise in PostgreSQL and exactly one of them creates the export. The S3 HEAD that checks a
candidate file happens before the lock is taken, and the candidate is re-read under it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from api.errors import DatasetUnknown, InvalidRequest
from api.launcher import LaunchError, RunLauncher
from api.schemas import ExportRequest
from api.security import Principal
from api.services.owner_cap import check_owner_cap
from api.services.reuse import checked_candidate, final_file, final_in_flight
from export_engine.core.catalog import Catalog, Dataset
from export_engine.core.dedup import Decision, decide, final_at
from export_engine.core.export_spec import ExportSpec
from export_engine.core.package_spec import PackageSpec
from export_engine.db.locks import lock_dedup_key
from export_engine.db.models import Export
from export_engine.db.session import db_now
from export_engine.delivery.bucket import S3Storage
from export_engine.errors import CatalogError, ExportRequestError
from export_engine.lifecycle import creation, transitions
from export_engine.runs.submission import UNCONTESTED_SUBMISSION
from export_engine.settings import Settings

log = logging.getLogger(__name__)

Outcome = Literal["created", "reused", "attached"]
LOCK_TIMEOUT_MS = 5000  # identical requests queue on the key's lock; none holds it across S3 I/O


@dataclass(frozen=True)
class CreateResult:
    export: Export
    outcome: Outcome
    to_submit: ExportSpec | PackageSpec | None = None  # created: the caller submits it (`submit_export`)
    committed_at: float | None = None  # time.monotonic() after the PENDING row's commit


@dataclass(frozen=True)
class ReusePolicy:
    """When data is final (business time zone + settlement lag) and how much life a reused file needs."""

    timezone: str = "UTC"
    settlement_lag: timedelta = timedelta(hours=24)
    min_life: timedelta = timedelta(hours=1)

    @classmethod
    def from_settings(cls, settings: Settings) -> ReusePolicy:
        return cls(
            timezone=settings.business_timezone,
            settlement_lag=timedelta(hours=settings.settlement_lag_hours),
            min_life=timedelta(seconds=settings.reuse_min_life_seconds),
        )


def create_export(
    *,
    session: Session,
    principal: Principal,
    request: ExportRequest,
    storage: S3Storage,
    catalog: Catalog,
    policy: ReusePolicy,
    owner_limit: int | None = None,
    now: datetime | None = None,
) -> CreateResult:
    """`now` defaults to the database's clock (tests pass a frozen one); `owner_limit` caps an owner's
    PENDING + RUNNING exports (None: no cap). A new export is only committed PENDING and returned with
    `to_submit`: the caller calls `submit_export` once it has answered."""
    dataset, spec = spec_for(catalog, principal, request)
    try:
        final_since = final_at(
            date_to=spec.date_to,
            time_grain=dataset.time_grain,
            timezone=policy.timezone,
            settlement_lag=policy.settlement_lag,
        )
    except (ValueError, OverflowError):  # a period that ends past the calendar (9999) is never final
        final_since = datetime.max.replace(tzinfo=UTC)
    return create_for_spec(
        session=session,
        spec=spec,
        final_since=final_since,
        force_refresh=request.force_refresh,
        storage=storage,
        policy=policy,
        owner_limit=owner_limit,
        now=now,
    )


def create_for_spec(
    *,
    session: Session,
    spec: ExportSpec | PackageSpec,
    final_since: datetime,
    force_refresh: bool,
    storage: S3Storage,
    policy: ReusePolicy,
    owner_limit: int | None = None,
    now: datetime | None = None,
) -> CreateResult:
    """The dedup rules for a canonical spec of either kind (an export, or a package: its key is never
    an export's), whose data is final from `final_since`. A new one is only committed PENDING and
    returned with `to_submit`: the caller calls `submit_export` once it has answered."""
    key = spec.dedup_key
    now = now or db_now(session)
    session.rollback()  # end the read-only transaction `now` began; the decision runs in its own
    final = not force_refresh and now >= final_since
    checked = checked_candidate(session, key, storage, final_since, now + policy.min_life) if final else None

    with session.begin():
        session.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT_MS}ms'"))  # past it: 503, retry
        lock_dedup_key(session, key)
        reusable = active = None
        if final:
            if checked is not None and checked.missing:
                transitions.expire_object(session, checked.s3_key)  # gone: never serve it again
            candidate = final_file(session, key, final_since, now + policy.min_life)
            if candidate is not None and not (
                checked and checked.missing and candidate.s3_key == checked.s3_key
            ):
                reusable = candidate
            active = final_in_flight(session, key, final_since)
        decision = decide(
            force_refresh=force_refresh,
            now=now,
            final_since=final_since,
            file_available=reusable is not None,
            in_flight=active is not None,
        )
        if decision is Decision.REUSE and reusable is not None:
            reuse = creation.create_reuse(session, spec, reusable)
            log.info(
                f"{spec.kind} reused",
                extra={"reference_id": reuse.reference_id, "reused_from_ref": reusable.reference_id},
            )
            return CreateResult(reuse, "reused")
        if decision is Decision.ATTACH and active is not None:
            log.info(f"{spec.kind} attached", extra={"reference_id": active.reference_id})
            return CreateResult(active, "attached")
        if owner_limit is not None:
            check_owner_cap(session, owner=spec.owner, limit=owner_limit)
        export = creation.create_pending(session, spec)

    log.info(f"{spec.kind} created", extra={"reference_id": export.reference_id, "dedup_key": key})
    return CreateResult(export, "created", to_submit=spec, committed_at=time.monotonic())


def submit_export(
    *,
    sessions: sessionmaker[Session],
    launcher: RunLauncher,
    reference_id: str,
    spec: ExportSpec | PackageSpec,
    committed_at: float | None = None,
) -> str | None:
    """Hand a committed PENDING export to Dagster and remember its run; None if Dagster could not
    take it now (the reconciler submits it after its grace period).

    `committed_at` (`time.monotonic()` when the PENDING row was committed): while the export is younger
    than `UNCONTESTED_SUBMISSION` no other submitter can have launched a run for it, so Dagster is not
    first asked for one (a GraphQL runs query less per export)."""
    uncontested = committed_at is not None and time.monotonic() - committed_at < (
        UNCONTESTED_SUBMISSION.total_seconds()
    )
    try:
        run_id = launcher.submit(reference_id, spec, look_first=not uncontested)
    except LaunchError as exc:
        log.warning(
            "run submission deferred to the reconciler: %s", exc, extra={"reference_id": reference_id}
        )
        return None
    with sessions() as session, session.begin():
        creation.record_run(session, reference_id, run_id)
    return run_id


def spec_for(catalog: Catalog, principal: Principal, request: ExportRequest) -> tuple[Dataset, ExportSpec]:
    """The canonical spec, checked against the catalog; the owner is always the token's subject."""
    try:
        dataset = catalog.get(request.table_name)
    except CatalogError as exc:
        raise DatasetUnknown(str(exc)) from exc
    if request.date_from is None or request.date_to is None:  # the routes fill them in first
        raise InvalidRequest("date range: date_from and date_to are both needed here")
    try:
        spec = ExportSpec.for_dataset(
            dataset,
            owner=principal.subject,
            date_from=request.date_from,
            date_to=request.date_to,
            format=request.format,
            compression=request.compression,
            columns=request.columns,
            filters=request.filters.to_filters(),
        )
    except ExportRequestError as exc:
        raise InvalidRequest(str(exc)) from exc
    return dataset, spec
