# One image for every process of the export engine. docker-compose.yml picks the process with `command:`:
#   gateway            uvicorn api.main:app --host 0.0.0.0 --port 8000           (the default CMD)
#   Dagster code       dagster code-server start -h 0.0.0.0 -p 4000 -m export_engine.definitions
#   Dagster webserver  dagster-webserver -h 0.0.0.0 -p 3000 -w /opt/dagster/home/workspace.yaml
#   Dagster daemon     dagster-daemon run -w /opt/dagster/home/workspace.yaml
#   migrations         alembic -c export_engine/db/alembic.ini upgrade head
# No HEALTHCHECK here because each process needs its own; docker-compose.yml defines them with what the
# image already has: python for HTTP probes (no curl), `dagster api grpc-health-check`,
# `dagster-daemon liveness-check`.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    DAGSTER_HOME=/opt/dagster/home

# tini is PID 1: it forwards SIGTERM and reaps the run-worker processes the Dagster code server spawns.
# Not version-pinned: Debian replaces point releases in place, so a pin would break future builds.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --create-home --home-dir /home/app --shell /usr/sbin/nologin app

WORKDIR /opt/export-engine

# Dependencies first, read from pyproject.toml alone, so a code change does not reinstall them.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# The project itself. The source stays in the working directory so the documented
# `alembic -c export_engine/db/alembic.ini upgrade head` works as written.
COPY export_engine ./export_engine
COPY api ./api
RUN pip install . \
    && rm -rf build export_engine.egg-info

# Dagster instance (PostgreSQL storage, read from DAGSTER_PG_*) and the compose workspace (gRPC code server).
# storage/ holds compute logs; compose shares it between the code server (where runs execute) and the webserver.
COPY --chown=app:app dagster.yaml ${DAGSTER_HOME}/dagster.yaml
COPY --chown=app:app deploy/workspace.docker.yaml ${DAGSTER_HOME}/workspace.yaml
RUN mkdir -p ${DAGSTER_HOME}/storage && chown -R app:app ${DAGSTER_HOME}

# Numeric, so Kubernetes' runAsNonRoot can verify it.
USER 10001:10001

EXPOSE 8000 3000 4000

ENTRYPOINT ["tini", "--"]
CMD ["uvicorn", "api.main:app", "--host", "0.0.0.0", "--port", "8000"]
