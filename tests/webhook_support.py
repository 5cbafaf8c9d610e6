"""Helpers shared by the webhook and call-record tests (seed payloads, a read-only file)."""

from __future__ import annotations

import contextlib
import copy
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# The seed pages' webhook examples, verbatim.
SEED_CALL_COMPLETED: dict[str, Any] = {
    "event": "call.completed",
    "created_at": "2026-05-29T12:10:00Z",
    "call": {
        "id": "call_123",
        "customer_id": "cust_123",
        "application_id": "app_123",
        "status": "completed",
        "direction": "inbound",
        "from": "+15551230001",
        "to": "+15551230002",
    },
    "variables": {},
    "data": {},
}

SEED_RECORDING_COMPLETED: dict[str, Any] = {
    "event": "recording.completed",
    "created_at": "2026-05-29T12:02:12Z",
    "call": {"id": "call_123", "status": "in_progress", "direction": "inbound"},
    "variables": {},
    "data": {"recording_id": "rec_call_123", "status": "completed", "duration_seconds": 120, "size_bytes": 204800},
}

RECORDING_FAILED: dict[str, Any] = {
    "event": "recording.failed",
    "created_at": "2026-05-29T12:05:00Z",
    "call": {"id": "call_123", "status": "in_progress"},
    "variables": {},
    "data": {"recording_id": "rec_call_123_b", "status": "failed"},
}


def webhook(template: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A copy of ``template``; ``call_id=`` and ``created_at=`` change those fields."""
    out = copy.deepcopy(template)
    if "call_id" in changes:
        out["call"]["id"] = changes.pop("call_id")
    out.update(changes)
    return out


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """Make ``path`` unwritable, even for root (``chattr +i``); skip where that is impossible."""
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(0o444)
        try:
            yield
        finally:
            path.chmod(mode)
        return
    done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip("running as root without chattr +i: cannot make the database read-only")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)
