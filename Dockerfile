# One image for every process of the export engine. docker-compose.yml picks the process with `command:`:
#   gateway            uvicorn api.main:app --host 0.0.0.0 --port 8000           (the default CMD)
#   Dagster code       dagster code-server start -h 0.0.0.0 -p 4000 -m export_engine.definitions
#   Dagster webserver  dagster-webserver -h 0.0.0.0 -p 3000 -w /opt/dagster/home/workspace.yaml
#   Dagster daemon     dagster-daemon run -w /opt/dagster/home/workspace.yaml
#   migrations         alembic -c export_engine/db/alembic.ini upgrade head
#
# Two stages: `build` makes a virtualenv with every dependency; the final stage copies only that
# virtualenv (without pip) and the source, so the installer and its caches stay behind. No stage
# installs a compiler: every dependency ships a manylinux wheel.
#
# The base is pinned to a Python patch release on Debian 12. PYTHON_BASE swaps it for any image with
# Python 3.11, `python3 -m venv` and apt (deploy/compose-test builds one from Debian's packages, because
# that machine cannot pull images): `docker build --build-arg PYTHON_BASE=... .`
ARG PYTHON_BASE=python:3.11.14-slim-bookworm

FROM ${PYTHON_BASE} AS build

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src

# Dependencies only, read from pyproject.toml, so a code change reuses this stage whole. The installer
# goes afterwards: nothing in the final image installs packages at run time.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt \
    && pip uninstall --yes pip


FROM ${PYTHON_BASE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/opt/export-engine \
    DAGSTER_HOME=/opt/dagster/home

# tini is PID 1: it forwards SIGTERM and reaps the run-worker processes the Dagster code server spawns.
# Not version-pinned: Debian replaces point releases in place, so a pin would break future builds.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --create-home --home-dir /home/app --shell /usr/sbin/nologin app

COPY --from=build /opt/venv /opt/venv

# Dagster instance (PostgreSQL storage, read from DAGSTER_PG_*) and the compose workspace (gRPC code server).
# storage/ holds compute logs; compose shares it between the code server (where runs execute) and the webserver.
COPY --chown=app:app dagster.yaml ${DAGSTER_HOME}/dagster.yaml
COPY --chown=app:app deploy/workspace.docker.yaml ${DAGSTER_HOME}/workspace.yaml
RUN mkdir -p ${DAGSTER_HOME}/storage && chown -R app:app ${DAGSTER_HOME}

# One HEALTHCHECK for every process: the script reads the command tini runs and probes that process
# (gateway /healthz, webserver /server_info, code server gRPC ping, daemon liveness). One-shot commands
# and processes it does not know report healthy. docker-compose.yml's own health checks override it.
COPY deploy/healthcheck.py /usr/local/bin/export-engine-healthcheck
HEALTHCHECK --interval=15s --timeout=30s --start-period=120s --retries=5 \
    CMD ["python", "/usr/local/bin/export-engine-healthcheck"]

# The project is its source, imported through PYTHONPATH rather than installed: a code change rebuilds
# these last small layers only, and the documented `alembic -c export_engine/db/alembic.ini upgrade head`
# works as written from the working directory. Compiled here, as the app user cannot write __pycache__.
WORKDIR /opt/export-engine
COPY export_engine ./export_engine
COPY api ./api
# devstack/ for the compose `seed` service (profile demo) only: `from devstack import seed`.
COPY devstack ./devstack
RUN python -m compileall -q export_engine api devstack

# Numeric, so Kubernetes' runAsNonRoot can verify it.
USER 10001:10001

EXPOSE 8000 3000 4000

ENTRYPOINT ["tini", "--"]
CMD ["uvicorn", "api.main:app", "--host", "0.0.0.0", "--port", "8000"]
