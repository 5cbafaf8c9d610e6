"""
A fixed-capacity int16 ring per track, on a monotonic sample clock.

Pure numpy: no asyncio, no locks (everything runs on one event loop), no I/O.
Writers never wait and never fail: the oldest samples are overwritten, and a
reader asking for them learns how many it lost. ``release`` gives the memory
back to the OS at once, when the stream ends: the objects of a stream refer
to each other, so without it the buffers lived until a garbage-collection
pass (RSS 255 → 316 → 408 MB over three cycles of 200 streams).
"""

from __future__ import annotations

import mmap

import numpy as np

from receiver.errors import InvalidValue
from receiver.events import Samples
from receiver.speedups import ring_write


class TrackBuffer:
    """The last ``capacity`` samples of one track.

    ``head`` is the number of samples ever written: sample ``i`` of the track
    (on the stream's media clock) is held while ``head - capacity <= i < head``.
    """

    __slots__ = ("_buf", "_map", "capacity", "head")

    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise InvalidValue("capacity must be positive")
        self.capacity = capacity
        # Private: mmap's default for an anonymous map is MAP_SHARED, memory of the kernel's shmem,
        # whose pages fault in at about twice the cost (170 against 98 µs for a 160 KB ring) and
        # which MADV_DONTNEED does not free (see ``release``).
        self._map = mmap.mmap(-1, 2 * capacity, flags=mmap.MAP_PRIVATE)
        self._buf: Samples = np.frombuffer(self._map, dtype=np.int16)
        self.head = 0

    @property
    def released(self) -> bool:
        return self._map.closed

    def release(self) -> None:
        """Unmap the samples now (idempotent); the buffer holds nothing after it.

        A view of the samples someone still holds keeps the mapping; its pages
        are dropped all the same (``MADV_DONTNEED``), so the memory goes back
        and the view reads zeros.
        """
        if self._map.closed:
            return
        self._buf = _EMPTY
        try:
            self._map.close()
        except BufferError:  # a view is still out there: it reads zeros from now on
            self._map.madvise(mmap.MADV_DONTNEED)

    @property
    def oldest(self) -> int:
        """The index of the oldest sample still held."""
        return max(0, self.head - self.capacity)

    def write(self, samples: Samples) -> int:
        """Append samples; return the media-clock index of the first one."""
        start = self.head
        n = len(samples)
        cap = self.capacity
        i = start % cap
        if i + n <= cap:  # the frame fits before the end: one slice, no further call (once per frame)
            self._buf[i : i + n] = samples
        elif n > cap:  # only the last `capacity` samples survive
            self._put(start + n - cap, samples[n - cap :])
        else:
            self._put(start, samples)
        self.head = start + n
        return start

    def write_lookup(self, table: Samples | memoryview, codes: bytes, channel: int = 0, channels: int = 1) -> int:
        """Append the samples ``codes`` encodes, decoded straight into the ring (no array of
        their own); return the index of the first.

        ``table``: a G.711 table (``table[c]`` for every byte ``c``), or ``codecs.COPY`` (L16 in
        this machine's byte order, an even number of bytes: they are the samples).
        ``channels`` > 1: ``codes`` interleaves that many channels; ``channel``'s samples are appended.
        """
        start = self.head
        # The mapping itself, not the array on it: numpy's buffer export costs about 300
        # instructions a frame (a map's, a few); a released buffer's closed map raises ValueError.
        if channels == 1:  # one track's frame: no channel arguments to parse (see MediaClock.place_encoded)
            self.head = ring_write(table, codes, self._map, start)
        else:
            self.head = ring_write(table, codes, self._map, start, channel, channels)
        return start

    def _put(self, index: int, samples: Samples) -> None:
        cap = self.capacity
        i = index % cap
        end = i + len(samples)
        if end <= cap:
            self._buf[i:end] = samples
        else:
            split = cap - i
            self._buf[i:] = samples[:split]
            self._buf[: end - cap] = samples[split:]

    def write_silence(self, n: int) -> int:
        """Append ``n`` zero samples; return the index of the first one."""
        start = self.head
        cap = self.capacity
        if n >= cap:
            self._buf[:] = 0
        else:
            i = start % cap
            end = i + n
            if end <= cap:
                self._buf[i:end] = 0
            else:
                self._buf[i:] = 0
                self._buf[: end - cap] = 0
        self.head = start + n
        return start

    def read(self, start: int, end: int) -> Samples:
        """Return a copy of samples ``start`` to ``end`` (both still held).

        Raises:
            ValueError: Part of the range was overwritten or not written yet.
        """
        if start < self.oldest or end > self.head or start > end:
            raise InvalidValue(f"range {start}:{end} outside {self.oldest}:{self.head}")
        cap = self.capacity
        i, j = start % cap, end % cap
        if end - start == 0:
            return np.empty(0, dtype=np.int16)
        if i < j or j == 0:
            return self._buf[i : j or cap].copy()
        return np.concatenate((self._buf[i:], self._buf[:j]))

    def latest(self, n: int) -> Samples:
        """Return a copy of the last ``n`` samples held (fewer if fewer are held)."""
        start = max(self.oldest, self.head - n)
        return self.read(start, self.head)


# The samples live in an anonymous mapping of their own, not malloc: a stream's buffers are
# the receiver's biggest allocations (160 KB a track at 8 kHz). Once glibc has freed one block
# that size it raises its mmap threshold and serves the next from the heap, where streams
# coming and going fragment it: a one-minute soak grew RSS by 120 MB that way, against 20 MB
# with mappings. A mapping goes back to the OS when it is closed (``release``).
_EMPTY: Samples = np.zeros(0, dtype=np.int16)
_EMPTY.flags.writeable = False
