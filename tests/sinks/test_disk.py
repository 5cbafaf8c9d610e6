"""DiskSpace: the recordings' free-space floor and size quota (a real directory, no mocks)."""

from __future__ import annotations

import os
from pathlib import Path

from receiver.sinks.disk import DISK_LOW, QUOTA, DiskSpace


def test_nothing_configured_refuses_nothing(tmp_path: Path) -> None:
    disk = DiskSpace(tmp_path)
    disk.refresh()

    assert disk.refusal() is None


def test_a_floor_above_the_free_space_refuses(tmp_path: Path) -> None:
    free = os.statvfs(tmp_path).f_bavail * os.statvfs(tmp_path).f_frsize
    disk = DiskSpace(tmp_path / "not" / "made" / "yet", min_free_bytes=free + (1 << 40))
    disk.refresh()  # the nearest existing directory's filesystem

    assert disk.refusal() == DISK_LOW
    disk.min_free_bytes = 1
    disk.refresh()
    assert disk.refusal() is None


def test_the_quota_counts_what_is_there_and_what_is_written_since(tmp_path: Path) -> None:
    (tmp_path / "call").mkdir()
    (tmp_path / "call" / "a.wav").write_bytes(b"x" * 6000)
    disk = DiskSpace(tmp_path, max_total_bytes=10_000, scan_interval=3600)
    disk.refresh()

    assert (disk.total_bytes, disk.refusal()) == (6000, None)
    disk.wrote(5000)
    assert disk.refusal() == QUOTA
    (tmp_path / "call" / "a.wav").unlink()  # someone cleaned up: the next scan sees it
    disk.scan_interval = 0
    disk.refresh()
    assert (disk.total_bytes, disk.refusal()) == (0, None)
