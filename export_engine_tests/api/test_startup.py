"""The gateway process itself refuses to start with the published dev secret outside development."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx

from devstack.processes import PROJECT_ROOT, free_port
from export_engine.settings import DEV_JWT_SECRET


def test_the_gateway_refuses_to_start_with_the_dev_secret_outside_development():
    """`uvicorn api.main:app` with ENVIRONMENT and JWT_SECRET unset exits instead of serving."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JWT_", "ENVIRONMENT"))}
    env.update(
        DATABASE_URL=f"postgresql://x:y@127.0.0.1:{free_port()}/x",
        SOURCE_DATABASE_URL=f"postgresql://x:y@127.0.0.1:{free_port()}/y",
    )
    port = free_port()
    gateway = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        while gateway.poll() is None:  # it must exit on its own; if it serves instead, that is the bug
            try:
                served = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            except httpx.TransportError:
                time.sleep(0.2)
                continue
            raise AssertionError(f"the gateway started and answered {served.status_code}")
        _, stderr = gateway.communicate()
    finally:
        if gateway.poll() is None:
            gateway.kill()
            gateway.wait()
    assert gateway.returncode != 0
    assert "JWT_SECRET must be set when ENVIRONMENT='production'" in stderr
    assert DEV_JWT_SECRET not in stderr
