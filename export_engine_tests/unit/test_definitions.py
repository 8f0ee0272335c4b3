"""The one Definitions object resolves every job, sensor and schedule by name (without touching the env)."""

from export_engine.definitions import defs


def test_every_job_sensor_and_schedule_resolves():
    assert {defs.resolve_job_def(name).name for name in ("export_job", "retention_job")} == {
        "export_job",
        "retention_job",
    }
    sensors = {"export_reconciler_sensor"}
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
