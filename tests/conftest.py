"""Test-suite wide settings.

``MEDTWIN_REQUIRE_SERVICES=1`` (set by .ci/run) turns a skip for a missing service (PostgreSQL,
Mosquitto, a browser) into a failure, so CI can never pass by skipping what it must test.
"""

from __future__ import annotations

import os

import pytest

import medtwin  # noqa: F401  (float64 before any test touches JAX)


def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> None:
    if os.environ.get("MEDTWIN_REQUIRE_SERVICES") != "1" or call.excinfo is None:
        return
    if call.excinfo.errisinstance(pytest.skip.Exception) and item.get_closest_marker("service"):
        raise pytest.fail.Exception(
            f"{item.nodeid} needs a service but skipped with MEDTWIN_REQUIRE_SERVICES=1: "
            f"{call.excinfo.value}"
        )
