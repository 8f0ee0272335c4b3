"""The delivery sensor: reads the events outbox and sends webhooks and Telegram messages.

Each tick runs `Notifier.run_for(TICK_SECONDS)`: passes every half second while there is nothing to
do, so a completion is usually sent well under a second after its commit rather than at the next
tick. It launches no runs, so it never competes with exports for run slots; a receiver that is slow
or down costs this sensor's thread (`sensors: use_threads` in dagster.yaml), never an export.
"""
# No `from __future__ import annotations`: Dagster reads the sensor's annotations at definition time.

import dagster as dg

from export_engine.notifications.dispatch import Notifier
from export_engine.runs.resources import S3StorageResource
from export_engine.settings import get_settings

TICK_SECONDS = 20.0  # below Dagster's 60 s sensor timeout, long enough that ticks' gaps rarely matter

_notifiers: dict[str, Notifier] = {}  # one per code server process: keeps its HTTP connection pool


@dg.sensor(minimum_interval_seconds=1, default_status=dg.DefaultSensorStatus.RUNNING)
def notification_sensor(context: dg.SensorEvaluationContext, storage: dg.ResourceParam[S3StorageResource]):
    settings = get_settings()
    notifier = _notifiers.get(settings.database_url)
    if notifier is None:
        notifier = _notifiers[settings.database_url] = Notifier.from_settings(settings, storage)
    done = notifier.run_for(TICK_SECONDS)
    for error in done.errors[:5]:
        context.log.warning("notification error: %s", error)
    return dg.SkipReason(
        f"fanned out {done.fanned_out} events; delivered {done.delivered}, "
        f"retrying {done.retrying}, failed {done.failed}"
    )
