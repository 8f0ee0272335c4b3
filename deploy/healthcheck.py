"""The image's HEALTHCHECK: probe whichever export-engine process this container runs.

One image runs five kinds of process (Dockerfile), so one fixed probe would mark four of them unhealthy.
PID 1 is `tini -- <command>`; the command says which process this is and on which port it listens:

    uvicorn ...             GET /healthz on --port (8000)
    dagster-webserver ...   GET /server_info on -p/--port (3000)
    dagster code-server ... `dagster api grpc-health-check -p <port>` (4000)
    dagster-daemon run ...  `dagster-daemon liveness-check`
    anything else           healthy (one-shots such as the migrations, or a process this script does not know)

Exit 0 = healthy, 1 = unhealthy (what Docker expects). Standard library only.
"""

from __future__ import annotations

import subprocess
import sys
import urllib.request


def _command() -> list[str]:
    with open("/proc/1/cmdline", "rb") as f:
        argv = [a.decode() for a in f.read().split(b"\0") if a]
    if argv and argv[0].endswith("tini") and "--" in argv:
        argv = argv[argv.index("--") + 1 :]
    return argv


def _option(argv: list[str], names: tuple[str, ...], default: str) -> str:
    for i, arg in enumerate(argv[:-1]):
        if arg in names:
            return argv[i + 1]
    return default


def _http(port: str, path: str) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        return 0 if response.status < 400 else 1


def probe(argv: list[str]) -> int:
    program = argv[0].rsplit("/", 1)[-1] if argv else ""
    if program == "uvicorn":
        return _http(_option(argv, ("--port",), "8000"), "/healthz")
    if program == "dagster-webserver":
        return _http(_option(argv, ("-p", "--port"), "3000"), "/server_info")
    if program == "dagster" and "code-server" in argv:
        port = _option(argv, ("-p", "--port"), "4000")
        return subprocess.run(["dagster", "api", "grpc-health-check", "-p", port], timeout=30).returncode
    if program == "dagster-daemon" and "run" in argv:
        return subprocess.run(["dagster-daemon", "liveness-check"], timeout=30).returncode
    return 0


if __name__ == "__main__":
    try:
        sys.exit(probe(_command()))
    except Exception as exc:  # any failure to probe is "unhealthy", with the reason in `docker inspect`
        print(f"unhealthy: {exc!r}", file=sys.stderr)
        sys.exit(1)
