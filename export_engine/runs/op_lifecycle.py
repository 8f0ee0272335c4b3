"""What an export's or a package's op does when its work raises: the one failure policy of both ops.

    with failure_policy(context, repo, kind="export", claim=claim, claimed_at=t0, max_runtime_seconds=n):
        ...  # the work; anything it raises is decided here

- `dg.Failure`: already decided (permanent, recorded on the row): passed on.
- `UploadStopped`: the row ended elsewhere (canceled, failed, taken over): not retried.
- `DagsterExecutionInterruptedError` (a terminated run): the row fails with why (the deadline, or a
  plain termination; a CANCELED row stays CANCELED), not retried.
- any other error: permanent (`is_permanent`), or past the last retry: the row fails with its reason,
  not retried; otherwise passed on as it is, so `EXPORT_RETRY_POLICY` retries the op.
"""
# No `from __future__ import annotations`: the ops that use it are read by Dagster at definition time.

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import dagster as dg
import psycopg2
from botocore.exceptions import ClientError
from sqlalchemy.exc import OperationalError
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_exponential_jitter

from export_engine.core.catalog import CatalogError
from export_engine.delivery.multipart import UploadStopped
from export_engine.errors import ExportPermanentError
from export_engine.lifecycle.repository import ExportRepository
from export_engine.lifecycle.transitions import Claim
from export_engine.settings import Settings

MAX_RETRIES = 3
EXPORT_RETRY_POLICY = dg.RetryPolicy(
    max_retries=MAX_RETRIES, delay=1.0, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)


@contextmanager
def failure_policy(
    context: dg.OpExecutionContext,
    repo: ExportRepository,
    *,
    kind: str,
    claim: Claim,
    claimed_at: float,
    max_runtime_seconds: int,
    on_stop: Callable[[], None] | None = None,
) -> Iterator[None]:
    """`kind` ("export" or "package") names the row in reasons and log lines; `claimed_at` is the
    `time.monotonic()` of the claim; `on_stop` runs once the work stopped or was terminated (a package
    aborts what is left of its uploads)."""
    reference_id, run_id = claim.export.reference_id, context.run_id
    try:
        yield
    except dg.Failure:
        raise  # already decided: permanent, recorded on the row
    except UploadStopped as exc:
        if on_stop is not None:
            on_stop()
        export = repo.get(reference_id)
        status = export.status if export else "missing"
        reason = f"stopped: the {kind} became {status} (or another run took it over); its upload was aborted"
        context.log.warning("%s %s %s", kind, reference_id, reason)
        raise dg.Failure(description=reason, allow_retries=False) from exc
    except dg.DagsterExecutionInterruptedError as exc:
        # Canceled by its owner (already CANCELED: this is a no-op), from the UI, or by the run monitor.
        age = claim.age_seconds + time.monotonic() - claimed_at
        reason = termination_reason(age, max_runtime_seconds)
        repo.fail(reference_id, reason, run_id=run_id)
        if on_stop is not None:
            on_stop()
        raise dg.Failure(description=reason, allow_retries=False) from exc
    except Exception as exc:
        reason = describe_error(exc)
        permanent = is_permanent(exc)
        if permanent or context.retry_number >= MAX_RETRIES:
            repo.fail(reference_id, reason, run_id=run_id)
            context.log.error("%s %s failed: %s", kind, reference_id, reason)
            raise dg.Failure(
                description=reason,
                metadata={
                    "reference_id": reference_id,
                    "permanent": permanent,
                    "attempt": context.retry_number + 1,
                },
                allow_retries=False,
            ) from exc
        context.log.warning(
            "%s %s: attempt %d failed (%s); will retry", kind, reference_id, context.retry_number + 1, reason
        )
        raise


def termination_reason(age_seconds: float, max_runtime_seconds: int) -> str:
    if age_seconds > max_runtime_seconds:
        return f"exceeded the maximum runtime of {max_runtime_seconds} seconds"
    return "the run was terminated"


# -- the claim and the completion, shared by the export and the package ops -----------------------
FINISHED_RUN_STATUSES = (
    dg.DagsterRunStatus.SUCCESS,
    dg.DagsterRunStatus.FAILURE,
    dg.DagsterRunStatus.CANCELED,
)


def claim(
    context: dg.OpExecutionContext, repo: ExportRepository, reference_id: str, settings: Settings
) -> Claim | None:
    """Take the export for this run, from no one, from itself (an op retry), or from a finished run."""
    export = repo.get(reference_id)
    if export is None:
        raise dg.Failure(description=f"export {reference_id} does not exist", allow_retries=False)
    holder = export.dagster_run_id
    finished_holder = None
    if holder and holder != context.run_id:
        holder_run = context.instance.get_run_by_id(holder)
        if holder_run is None or holder_run.status in FINISHED_RUN_STATUSES:
            finished_holder = holder
    return repo.start(
        reference_id,
        context.run_id,
        stale_after=timedelta(seconds=settings.heartbeat_timeout_seconds),
        finished_holder=finished_holder,
    )


@retry(
    retry=retry_if_exception_type(OperationalError),
    stop=stop_after_delay(60),
    wait=wait_exponential_jitter(initial=0.5, max=8),
    reraise=True,
)
def record_completion(repo: ExportRepository, reference_id: str, run_id: str, **result: Any) -> bool:
    """The file is uploaded: an export-DB blip now must not throw the whole export away."""
    return repo.complete(reference_id, run_id, **result)


def refuse_if_past_deadline(
    repo: ExportRepository, claim: Claim, run_id: str, max_runtime_seconds: int
) -> None:
    """A run retried after the deadline (e.g. after the run monitor killed it) must not start over."""
    if claim.age_seconds > max_runtime_seconds:
        reason = f"exceeded the maximum runtime of {max_runtime_seconds} seconds"
        reference_id = claim.export.reference_id
        repo.fail(reference_id, reason, run_id=run_id)
        raise dg.Failure(description=reason, metadata={"reference_id": reference_id}, allow_retries=False)


# -- which errors a retry cannot fix --------------------------------------------------------------
_PERMANENT_PG_ERRORS = (
    psycopg2.errors.UndefinedTable,
    psycopg2.errors.UndefinedColumn,
    psycopg2.errors.InsufficientPrivilege,
    psycopg2.errors.ReadOnlySqlTransaction,
    psycopg2.errors.InvalidCatalogName,
    psycopg2.errors.SyntaxError,
    psycopg2.errors.DatatypeMismatch,
    psycopg2.errors.InvalidTextRepresentation,
)
_PERMANENT_S3_CODES = {"AccessDenied", "NoSuchBucket", "InvalidAccessKeyId", "SignatureDoesNotMatch"}


def is_permanent(exc: BaseException) -> bool:
    """Errors that retrying cannot fix; everything else (resets, 5xx, throttling) is worth a retry."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, (CatalogError, ExportPermanentError, UploadStopped, *_PERMANENT_PG_ERRORS)):
            return True
        if (
            isinstance(seen, ClientError)
            and seen.response.get("Error", {}).get("Code") in _PERMANENT_S3_CODES
        ):
            return True
        seen = seen.__cause__
    return False


def describe_error(exc: BaseException) -> str:
    """A one-line reason a person can act on, stored on the export and shown in the Dagster UI."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
