"""Programs some tests need from the machine: Debian's Chromium (the web page tests) and Info-ZIP's
`unzip` (a second ZIP reader for packages).

On a developer machine a missing program skips what needs it, saying how to install it. In CI
(`.ci/run` exports `REQUIRE_TOOLS=1`) it is an error instead: CI must not go green with the browser
tests or a reader check silently skipped (review 2026-12-07 N11).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))


def required() -> bool:
    return os.environ.get("REQUIRE_TOOLS") == "1"


def _missing(message: str) -> None:
    if required():
        pytest.fail(f"{message} (REQUIRE_TOOLS=1: a missing tool fails the run)", pytrace=False)


def chromium_or_skip_module() -> Path:
    """Call at a browser test module's top: skips the module, or fails it when tools are required."""
    if not CHROMIUM.exists():
        message = f"Debian's chromium is not installed ({CHROMIUM} missing): `apt-get install -y chromium`"
        _missing(message)
        pytest.skip(message, allow_module_level=True)
    return CHROMIUM


def have(program: str, install: str) -> bool:
    """Whether `program` is on PATH; when tools are required, a missing one fails the test."""
    if shutil.which(program):
        return True
    _missing(f"{program} is not installed: `{install}`")
    return False
