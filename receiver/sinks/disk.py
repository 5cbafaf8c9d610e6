"""
Disk space for recordings: what the WAV sink may still write, and whether new streams may start.

Three bounds, each 0 to switch it off:

- ``min_free_bytes``: below this much free space on the recordings
  filesystem, new streams are refused at the handshake (HTTP 503,
  ``disk_low``) and live recordings are finalised (their streams go on);
- ``max_total_bytes``: the recordings directory may hold this much (a scan
  at start and every ``scan_interval``, plus what this process wrote since):
  over it, the same as above (``recordings_quota``);
- ``max_stream_bytes``: one stream's files may grow this big; then they are
  finalised (``recording_limit``). ``WavSink`` applies it.

Blocking (``statvfs``, the directory scan): ``refresh`` runs on a thread, never
on the event loop. ``refusal`` only reads what the last refresh found.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Final

DISK_LOW: Final = "disk_low"
QUOTA: Final = "recordings_quota"
STREAM_LIMIT: Final = "recording_limit"


class DiskSpace:
    """The recordings' disk bounds, shared by every stream of a process.

    Args:
        root: The recordings directory.
        min_free_bytes: Free space below which no recording starts or goes on.
        max_total_bytes: The most the recordings directory may hold.
        max_stream_bytes: The most one stream's files may hold.
        scan_interval: Seconds between scans of the directory (with a quota).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        min_free_bytes: int = 0,
        max_total_bytes: int = 0,
        max_stream_bytes: int = 0,
        scan_interval: float = 60.0,
    ) -> None:
        self.root = os.fspath(root)
        self.min_free_bytes = min_free_bytes
        self.max_total_bytes = max_total_bytes
        self.max_stream_bytes = max_stream_bytes
        self.scan_interval = scan_interval
        self.free_bytes: int | None = None  # at the last refresh; None: not known (no refusal)
        self.total_bytes = 0  # the directory's size at the last scan, plus what was written since
        self._scanned_at = -float("inf")
        self._checked_at = -float("inf")
        self._lock = threading.Lock()

    def refusal(self) -> str | None:
        """Why no recording may start or go on now (``disk_low``, ``recordings_quota``), or None."""
        free = self.free_bytes
        if self.min_free_bytes and free is not None and free < self.min_free_bytes:
            return DISK_LOW
        if self.max_total_bytes and self.total_bytes > self.max_total_bytes:
            return QUOTA
        return None

    def wrote(self, n: int) -> None:
        """``n`` more bytes went to the recordings (any thread)."""
        with self._lock:
            self.total_bytes += n

    def refresh(self, *, at_most_every: float = 0.0) -> None:
        """Look at the filesystem again (blocking: a thread, never the event loop)."""
        now = time.monotonic()
        if now - self._checked_at < at_most_every:
            return
        self._checked_at = now
        if self.min_free_bytes:
            self.free_bytes = _free_bytes(self.root)
        if self.max_total_bytes and now - self._scanned_at >= self.scan_interval:
            self._scanned_at = now
            size = _tree_size(self.root)
            with self._lock:
                self.total_bytes = size


def _free_bytes(path: str) -> int | None:
    """Free space for unprivileged writers on ``path``'s filesystem (the nearest existing ancestor's)."""
    path = os.path.abspath(path)
    while True:
        try:
            st = os.statvfs(path)
        except FileNotFoundError:
            parent = os.path.dirname(path)
            if parent == path:
                return None
            path = parent
        except OSError:
            return None
        else:
            return st.f_bavail * st.f_frsize


def _tree_size(root: str) -> int:
    total = 0
    stack = [root]
    while stack:
        try:
            entries = os.scandir(stack.pop())
        except OSError:
            continue
        with entries:
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    elif entry.is_file(follow_symlinks=False):
                        total += entry.stat(follow_symlinks=False).st_size
                except OSError:
                    continue
    return total
