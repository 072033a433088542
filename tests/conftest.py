"""Project-wide test rules. In CI (``$CI`` set, as GitHub Actions and most CI services do) a skipped test is a
failure: every skip here means a guarantee the README promises (the sandbox's isolation, a hostile corpus case)
could not be checked on this machine, and CI is where it must be."""
from __future__ import annotations

import os

import pytest

from browser import browser_page, chromium  # noqa: F401  (pytest fixtures, registered once: see browser.py)


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and _in_ci() and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = (f"skipped in CI ($CI={os.environ['CI']!r}), so a promised guarantee went unchecked: "
                           f"{reason}")
