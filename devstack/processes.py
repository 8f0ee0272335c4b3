"""Child processes of the local stack: each in its own session so stopping it stops its children too."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]  # the repository: devstack/ sits at its top


class ManagedProcess:
    def __init__(
        self, name: str, argv: Sequence[str], *, env: dict[str, str], log_path: Path, cwd: Path
    ) -> None:
        self.name = name
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            self.process = subprocess.Popen(
                list(argv), env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM the whole process group, then SIGKILL whatever is left."""
        if self.process.poll() is None:
            _signal_group(self.process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout)
        _signal_group(self.process.pid, signal.SIGKILL)  # stragglers (run workers, code servers)
        if self.process.poll() is None:
            self.process.wait()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def wait_until(
    check: Callable[[], bool], *, timeout: float, what: str, process: ManagedProcess | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except Exception:
            pass
        if process is not None and not process.alive():
            raise RuntimeError(f"{what}: process exited; log tail:\n{process.log_tail()}")
        if time.monotonic() > deadline:
            tail = process.log_tail() if process else ""
            raise RuntimeError(f"{what}: not ready after {timeout:.0f}s\n{tail}")
        time.sleep(0.25)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
