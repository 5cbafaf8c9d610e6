"""
Markers for tests that need a program from a Debian package.

Locally such a test skips when the program is missing; in CI
(``RECEIVER_CI=1``, set by ``.ci/run``) it runs anyway and fails, so a
missing package can never turn a CI run green by skipping.
"""

from __future__ import annotations

import os
import shutil

import pytest

IN_CI = bool(os.environ.get("RECEIVER_CI"))


def needs_program(name: str, package: str | None = None) -> pytest.MarkDecorator:
    """Skip unless ``name`` is on PATH (never skips in CI)."""
    missing = shutil.which(name) is None and not IN_CI
    return pytest.mark.skipif(
        missing, reason=f"{name} is not installed ({package or name}: scripts/system-packages.txt)"
    )
