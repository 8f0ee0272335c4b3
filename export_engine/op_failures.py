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

import dagster as dg

from export_engine.db.lifecycle import Claim
from export_engine.db.repository import ExportRepository
from export_engine.engine import describe_error, is_permanent
from export_engine.streaming import UploadStopped

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
