"""The one Definitions object resolves every job, sensor and schedule by name (without touching the env)."""

import dagster as dg

from export_engine.definitions import defs
from export_engine.settings import get_settings


def test_every_job_sensor_and_schedule_resolves():
    assert {defs.resolve_job_def(name).name for name in ("export_job", "retention_job")} == {
        "export_job",
        "retention_job",
    }
    sensors = {"export_reconciler_sensor", "notification_sensor"}
    assert {defs.resolve_sensor_def(name).name for name in sensors} == sensors
    assert defs.resolve_schedule_def("retention_schedule").cron_schedule == "*/15 * * * *"


def test_export_op_declares_its_retry_policy():
    op = defs.resolve_job_def("export_job").graph.node_defs[0]
    assert op.retry_policy.max_retries == 3
    assert op.retry_policy.backoff.value == "EXPONENTIAL"
    assert op.retry_policy.jitter.value == "PLUS_MINUS"


def test_package_job_resolves_with_the_export_retry_policy():
    op = defs.resolve_job_def("package_job").graph.node_defs[0]
    assert op.name == "package_op"
    assert op.retry_policy == defs.resolve_job_def("export_job").graph.node_defs[0].retry_policy
    assert set(op.output_dict) == {"datasets", "package"}  # one dynamic output per dataset


def test_resources_are_built_once_per_process_and_settings(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://here/exports")
    monkeypatch.setenv("SOURCE_DATABASE_URL", "postgresql://here/transactions")
    get_settings.cache_clear()
    try:
        export_db = defs.resources["export_db"]
        with (
            dg.build_resources({"export_db": export_db}) as first,
            dg.build_resources({"export_db": export_db}) as second,
        ):
            assert first.export_db is second.export_db  # the next run of the process reuses it

        get_settings.cache_clear()  # other settings: built again, from them
        monkeypatch.setenv("DATABASE_URL", "postgresql://elsewhere/exports")
        with dg.build_resources({"export_db": export_db}) as third:
            assert third.export_db is not first.export_db
            assert third.export_db.url == "postgresql://elsewhere/exports"
    finally:
        get_settings.cache_clear()
