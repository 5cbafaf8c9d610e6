"""
The pure-Python build of ``receiver/_native.pyx``: what runs where the extension was not compiled.

``receiver.speedups`` picks one of the two; both give the same results and
errors, and the test suite runs against each (``make test``, ``make test-pure``).
"""

from __future__ import annotations

import mmap
from typing import Final

import numpy as np

from receiver.events import Samples

try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - websockets always builds its speedups on CPython
    from websockets.utils import apply_mask

# next_frame's statuses.
NEED_MORE: Final = 0  # the frame at ``pos`` is not complete yet
DATA: Final = 1  # a final, masked text or binary frame: its message, and where the next frame starts
CONTROL: Final = 2  # a final, masked control frame from ``pos`` to ``stop``: for websockets
OTHER: Final = 3  # anything else from ``pos`` on (fragment, unmasked, reserved bits, too big): for websockets
BAD_UTF8: Final = 4  # a text frame whose payload is not UTF-8: for websockets (which closes 1007)

_UINT8: Final = np.dtype(np.uint8)


def next_frame(buf: bytes | bytearray, pos: int, max_size: int) -> tuple[int, str | bytes | None, int]:
    """The frame of ``buf`` starting at ``pos``: ``(status, message, stop)``.

    ``message`` is the unmasked payload (``str`` for text, ``bytes`` for binary)
    when ``status`` is ``DATA``, else None; ``stop`` is where the frame ends
    (``DATA``, ``CONTROL``), else ``pos``. ``max_size`` < 0: no limit.
    """
    if type(buf) is not bytes and type(buf) is not bytearray:
        raise TypeError("next_frame takes bytes or bytearray")
    end = len(buf)
    if pos < 0 or end - pos < 2:
        return (NEED_MORE, None, pos)
    b0 = buf[pos]
    b1 = buf[pos + 1]
    n = b1 & 0x7F
    if n < 126:
        head = pos + 2
    elif n == 126:
        if end - pos < 4:
            return (NEED_MORE, None, pos)
        n = (buf[pos + 2] << 8) | buf[pos + 3]
        head = pos + 4
    else:
        if end - pos < 10:
            return (NEED_MORE, None, pos)
        n = int.from_bytes(buf[pos + 2 : pos + 10], "big")
        head = pos + 10
    if not b1 & 0x80 or b0 & 0x70 or (max_size >= 0 and n > max_size):
        return (OTHER, None, pos)  # unmasked, reserved bits, or over the size limit
    stop = head + 4 + n
    if stop > end:
        return (NEED_MORE, None, pos)
    if not b0 & 0x80:
        return (OTHER, None, pos)  # a fragment
    opcode = b0 & 0x0F
    if opcode == 0x1:
        try:
            return (DATA, apply_mask(buf[head + 4 : stop], buf[head : head + 4]).decode(), stop)
        except UnicodeDecodeError:
            return (BAD_UTF8, None, pos)
    if opcode == 0x2:
        return (DATA, apply_mask(buf[head + 4 : stop], buf[head : head + 4]), stop)
    if opcode == 0x8 or opcode == 0x9 or opcode == 0xA:
        return (CONTROL, None, stop)
    return (OTHER, None, pos)  # continuation frames, reserved opcodes


def ring_write(
    table: Samples | memoryview,
    codes: bytes,
    ring: Samples | mmap.mmap,
    head: int,
    channel: int = 0,
    channels: int = 1,
) -> int:
    """Decode ``codes`` into the int16 ``ring`` as samples ``head`` on; return ``head`` + their number.

    Sample ``j`` of the track lives at ``ring[j % len(ring)]``: the samples go
    round the ring's end where they reach it, and of more than the ring holds
    only the last ``len(ring)`` stay. ``table``: 256 int16 samples (G.711,
    ``table[c]`` for every byte ``c``), or empty (``codecs.COPY``: ``codes``
    are int16 samples in this machine's byte order). ``channels`` > 1: ``codes``
    interleaves that many channels sample by sample, and only ``channel`` is written.

    Raises:
        ValueError: A table of another size, codes that are not whole samples of every
            channel, a channel outside them, an empty ring, or a negative ``head``.
    """
    if channels < 1 or not 0 <= channel < channels:
        raise ValueError("the channel must be one of the channels")
    # Any buffers of int16 (the compiled build takes them as they are; see TrackBuffer.write_lookup).
    table = np.frombuffer(table, np.int16)
    ring = np.frombuffer(ring, np.int16)
    copy = not len(table)
    if not copy and len(table) != 256:
        raise ValueError("the table must hold 256 int16 samples")
    width = 2 if copy else 1
    if len(codes) % (width * channels):
        raise ValueError("L16 takes an even number of bytes" if channels == 1 else "whole samples of every channel")
    n = len(codes) // (width * channels)
    cap = len(ring)
    if cap == 0 or head < 0:
        raise ValueError("an empty ring, or a negative head")
    if channels == 1:
        i = head % cap
        if i + n <= cap:  # the common case: before the ring's end, decoded into its place
            if copy:
                ring[i : i + n] = np.frombuffer(codes, np.int16)
            else:
                # By position, in "clip" mode: keywords cost more to parse than 160 lookups, and a
                # byte is always inside the table ("raise" would check, and buffer ``out``).
                table.take(np.frombuffer(codes, _UINT8), None, ring[i : i + n], "clip")
            return head + n
    if copy:
        samples = np.frombuffer(codes, np.int16)[channel::channels]
    else:
        samples = table.take(np.frombuffer(codes, _UINT8)[channel::channels], None, None, "clip")
    skip = n - cap if n > cap else 0  # only the last ``cap`` samples survive
    i = (head + skip) % cap
    first = min(n - skip, cap - i)
    ring[i : i + first] = samples[skip : skip + first]
    ring[: n - skip - first] = samples[skip + first :]
    return head + n
