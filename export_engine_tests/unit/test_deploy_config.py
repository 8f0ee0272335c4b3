"""The Kubernetes files say what dagster.yaml and docker-compose.yml say (nothing here runs Kubernetes).

deploy/k8s/dagster-values.yaml must render our instance: the pooled storages, the Celery run launcher,
no compute logs, the same queue, limits, retries and monitoring. deploy/k8s/gateway.yaml must run the
workers as compose does and carry the notification settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from dagster._core.instance.config import dagster_instance_config
from dagster_shared.yaml_utils import DagsterYamlLoader

from export_engine.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DAGSTER_YAML = yaml.safe_load((ROOT / "dagster.yaml").read_text())
VALUES = yaml.safe_load((ROOT / "deploy/k8s/dagster-values.yaml").read_text())
GATEWAY_TEXT = (ROOT / "deploy/k8s/gateway.yaml").read_text()
MANIFESTS = {(doc["kind"], doc["metadata"]["name"]): doc for doc in yaml.safe_load_all(GATEWAY_TEXT) if doc}
STORAGES = ("run_storage", "event_log_storage", "schedule_storage")

# What the chart's instance ConfigMap writes for the storages before it appends additionalInstanceConfig
# (helm/dagster/templates/configmap-instance.yaml: run_storage, event_log_storage and schedule_storage
# are always dagster_postgres' classes).
CHART_STORAGES = """
schedule_storage:
  module: dagster_postgres.schedule_storage
  class: PostgresScheduleStorage
  config: {postgres_db: {username: dagster, password: {env: DAGSTER_PG_PASSWORD}, hostname: h, db_name: dagster, port: 5432}}
run_storage:
  module: dagster_postgres.run_storage
  class: PostgresRunStorage
  config: {postgres_db: {username: dagster, password: {env: DAGSTER_PG_PASSWORD}, hostname: h, db_name: dagster, port: 5432}}
event_log_storage:
  module: dagster_postgres.event_log
  class: PostgresEventLogStorage
  config: {postgres_db: {username: dagster, password: {env: DAGSTER_PG_PASSWORD}, hostname: h, db_name: dagster, port: 5432}}
run_retries:
  enabled: true
  max_retries: 3
compute_logs:
  module: dagster._core.storage.noop_compute_log_manager
  class: NoOpComputeLogManager
telemetry:
  enabled: false
"""


def test_the_helm_values_give_the_pooled_storages_of_dagster_yaml():
    extra = VALUES["additionalInstanceConfig"]
    for key in STORAGES:
        assert (extra[key]["module"], extra[key]["class"]) == (
            DAGSTER_YAML[key]["module"],
            DAGSTER_YAML[key]["class"],
        )
        db = extra[key]["config"]["postgres_db"]
        assert db["scheme"] == "postgresql+psycopg2"
        assert db["password"] == {"env": "DAGSTER_PG_PASSWORD"}  # what the chart injects from its secret
        assert (db["hostname"], db["username"], db["db_name"], db["port"]) == (
            VALUES["postgresql"]["postgresqlHost"],
            VALUES["postgresql"]["postgresqlUsername"],
            VALUES["postgresql"]["postgresqlDatabase"],
            VALUES["postgresql"]["service"]["port"],
        )


def test_the_appended_storages_win_when_dagster_reads_the_rendered_instance(tmp_path):
    """The chart appends additionalInstanceConfig after its own keys: Dagster's loader keeps the last."""
    rendered = CHART_STORAGES + yaml.safe_dump(VALUES["additionalInstanceConfig"], sort_keys=False)
    (tmp_path / "dagster.yaml").write_text(rendered)
    loaded = yaml.load(rendered, Loader=DagsterYamlLoader)
    config, _ = dagster_instance_config(str(tmp_path))  # Dagster's own schema check of the instance
    for key in STORAGES:
        assert loaded[key]["module"] == "export_engine.runs.dagster_storage"
        assert config[key]["class"] == DAGSTER_YAML[key]["class"]
    assert config["run_retries"] == DAGSTER_YAML["run_retries"]  # retry_on_asset_or_op_failure too


def test_the_helm_values_launch_runs_on_the_celery_workers_like_dagster_yaml():
    launcher = VALUES["runLauncher"]
    assert launcher["type"] == "CustomRunLauncher"
    custom = launcher["config"]["customRunLauncher"]
    assert {"module": custom["module"], "class": custom["class"], "config": custom["config"]} == (
        DAGSTER_YAML["run_launcher"]
    )
    assert VALUES["computeLogManager"]["type"] == "NoOpComputeLogManager"
    assert DAGSTER_YAML["compute_logs"]["class"] == "NoOpComputeLogManager"
    assert VALUES["telemetry"] == DAGSTER_YAML["telemetry"] == {"enabled": False}
    # The webserver and the daemon import those classes: they run our image, like the code server.
    image = VALUES["dagster-user-deployments"]["deployments"][0]["image"]
    assert VALUES["dagsterWebserver"]["image"] == VALUES["dagsterDaemon"]["image"] == image


def test_the_helm_values_queue_retry_and_monitor_like_dagster_yaml():
    daemon = VALUES["dagsterDaemon"]
    queued = daemon["runCoordinator"]["config"]["queuedRunCoordinator"]
    ours = DAGSTER_YAML["run_coordinator"]["config"]
    assert (
        queued["maxConcurrentRuns"],
        queued["dequeueIntervalSeconds"],
        queued["tagConcurrencyLimits"],
    ) == (
        ours["max_concurrent_runs"],
        ours["dequeue_interval_seconds"],
        ours["tag_concurrency_limits"],
    )
    assert _snake(daemon["runMonitoring"]) == DAGSTER_YAML["run_monitoring"]
    assert _snake(daemon["runRetries"]) == DAGSTER_YAML["run_retries"]
    assert _snake(daemon["sensors"]) == DAGSTER_YAML["sensors"]
    assert _snake(daemon["schedules"]) == DAGSTER_YAML["schedules"]
    # Every run slot has a worker process: replicas x concurrency.
    workers = MANIFESTS[("Deployment", "export-engine-worker")]["spec"]["replicas"]
    concurrency = int(MANIFESTS[("ConfigMap", "export-engine-config")]["data"]["CELERY_WORKER_CONCURRENCY"])
    assert workers * concurrency == queued["maxConcurrentRuns"]


def test_the_workers_run_composes_command_with_the_daemons_instance():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    compose_command = compose["services"]["worker"]["command"]
    pod = MANIFESTS[("Deployment", "export-engine-worker")]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == [part.replace("$$", "$") for part in compose_command]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    instance = mounts["/opt/dagster/home/dagster.yaml"]  # the image's DAGSTER_HOME (Dockerfile)
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert (
        volumes[instance["name"]]["configMap"]["name"] == "dagster-instance"
    )  # the chart's, release `dagster`
    assert "/opt/dagster/home/storage" in mounts


def test_every_pod_running_export_code_gets_the_settings_and_notification_variables():
    config = MANIFESTS[("ConfigMap", "export-engine-config")]["data"]
    for key in config:
        assert key.startswith("CELERY_") or key.lower() in Settings.model_fields, key
    notification_vars = [
        name.upper() for name in Settings.model_fields if name.startswith(("webhook_", "telegram_"))
    ]
    assert notification_vars
    for name in notification_vars:  # the secret ones are documented for the Secret in the header
        assert name in config or name in GATEWAY_TEXT.split("---")[0], name
    for kind, name in (("Job", "export-engine-migrate"), ("Deployment", "export-engine-api"),
                       ("Deployment", "export-engine-worker")):  # fmt: skip
        spec = MANIFESTS[(kind, name)]["spec"]["template"]["spec"]
        (container,) = spec["containers"]
        assert container["envFrom"] == [
            {"configMapRef": {"name": "export-engine-config"}},
            {"secretRef": {"name": "export-engine-env"}},  # last: a key in both takes the Secret's value
        ]
    code_server = VALUES["dagster-user-deployments"]["deployments"][0]  # the sensors, notifications too
    assert code_server["envConfigMaps"] == [{"name": "export-engine-config"}]
    assert code_server["envSecrets"] == [{"name": "export-engine-env"}]


def _snake(values: dict[str, Any]) -> dict[str, Any]:
    return {"".join(f"_{c.lower()}" if c.isupper() else c for c in k): v for k, v in values.items()}
