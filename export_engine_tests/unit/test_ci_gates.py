"""CI cannot go green on nothing (review 2026-12-07 N11): zero tests collected fails `make test`, and
with `REQUIRE_TOOLS=1` (what `.ci/run` exports) a missing browser fails the run instead of skipping."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYTEST = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]


def _fake_bin(tmp_path: Path, pytest_exit: int) -> Path:
    """Stand-ins for the venv's programs: the gates pass, "pytest" exits with `pytest_exit`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, code in (("ruff", 0), ("mypy", 0), ("lint-imports", 0), ("python", pytest_exit)):
        script = bin_dir / name
        script.write_text(f"#!/bin/sh\nexit {code}\n")
        script.chmod(0o755)
    (bin_dir / "stamp").touch()  # newer than pyproject.toml: nothing to install
    return bin_dir


@pytest.mark.parametrize(("pytest_exit", "make_fails"), [(0, False), (1, True), (5, True)])
def test_make_test_fails_when_pytest_collects_nothing(tmp_path, pytest_exit, make_fails):
    bin_dir = _fake_bin(tmp_path, pytest_exit)
    done = subprocess.run(
        ["make", "-s", "test", f"BIN={bin_dir}", f"STAMP={bin_dir / 'stamp'}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (done.returncode != 0) == make_fails, done.stdout + done.stderr


def _collect_web_page_tests(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PYTEST, "--collect-only", "-rs", "export_engine_tests/e2e/test_web_page.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "CHROMIUM_PATH": "/nonexistent/chromium", **env},
    )


def test_a_missing_browser_fails_collection_when_tools_are_required():
    done = _collect_web_page_tests(REQUIRE_TOOLS="1")
    assert done.returncode not in (0, 5), done.stdout
    assert "/nonexistent/chromium missing" in done.stdout
    assert "REQUIRE_TOOLS=1: a missing tool fails the run" in done.stdout


def test_a_missing_browser_only_skips_on_a_developer_machine():
    done = _collect_web_page_tests(REQUIRE_TOOLS="0")
    assert done.returncode in (0, 5), done.stdout
    assert "SKIPPED" in done.stdout and "/nonexistent/chromium missing" in done.stdout


def test_ci_requires_the_tools_and_runs_the_test_command():
    script = (ROOT / ".ci" / "run").read_text()
    assert "export REQUIRE_TOOLS=1" in script
    assert "will be skipped" not in script
