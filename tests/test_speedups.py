"""The compiled build (receiver/_native.pyx) against the pure-Python one (receiver/_pure.py): same results, same errors."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from receiver import _pure, speedups
from receiver.codecs import _ALAW_TO_INT16, _ULAW_TO_INT16, COPY

try:
    from receiver import _native
except ImportError:  # the extension was not compiled on this machine
    _native = None  # type: ignore[assignment]

OP_TEXT, OP_BINARY, OP_CONT, OP_PING, OP_CLOSE = Opcode.TEXT, Opcode.BINARY, Opcode.CONT, Opcode.PING, Opcode.CLOSE
OP_RESERVED = 0x3
CONTROL = (Opcode.PING, Opcode.PONG)

BUILDS = [pytest.param(_pure, id="pure")]
if _native is not None:
    BUILDS.append(pytest.param(_native, id="compiled"))


def test_ci_runs_the_build_it_asked_for() -> None:
    """In CI the extension must have been compiled (pip install did it), unless the pure build was asked for."""
    pure = os.environ.get("RECEIVER_PURE_PYTHON", "") not in ("", "0")
    if os.environ.get("RECEIVER_CI") and not pure:
        assert _native is not None, "receiver/_native.pyx was not compiled by the install"
    assert speedups.COMPILED is (not pure and _native is not None)
    assert (speedups.next_frame is _pure.next_frame) is not speedups.COMPILED


def test_the_pure_build_can_be_asked_for() -> None:
    code = "import receiver.speedups as s, receiver._pure as p; print(s.COMPILED, s.lookup_into is p.lookup_into)"
    for value, expected in (("1", "False True"), ("0", f"{_native is not None} {_native is None}")):
        env = {**os.environ, "RECEIVER_PURE_PYTHON": value}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        assert out.stdout.split() == expected.split()


def frame(opcode: Opcode | int, payload: bytes, *, fin: bool = True, rsv1: bool = False, mask: bool = True) -> bytes:
    """A client frame as websockets itself writes it (so the tests do not check the cutter against itself)."""
    data = Frame(Opcode(opcode if opcode != OP_RESERVED else OP_BINARY), payload, fin=fin).serialize(
        mask=mask, extensions=[]
    )
    # websockets writes no reserved opcode nor bit: a binary frame, relabelled / a text frame, marked.
    if opcode == OP_RESERVED:
        data = bytes([data[0] & 0xF0 | OP_RESERVED]) + data[1:]
    if rsv1:
        data = bytes([data[0] | 0x40]) + data[1:]
    return data


def parse_with_websockets(data: bytes) -> tuple[int, bytes, bool]:
    """websockets' own parser on one masked client frame: (opcode, unmasked payload, fin)."""
    reader = StreamReader()
    reader.feed_data(data)
    gen = Frame.parse(reader.read_exact, mask=True, max_size=None, extensions=[])
    try:
        next(gen)
    except StopIteration as stop:
        f = stop.value
        return f.opcode.value, bytes(f.data), f.fin
    raise AssertionError("incomplete frame")


@pytest.mark.parametrize("build", BUILDS)
@pytest.mark.parametrize("size", [0, 1, 125, 126, 300, 65535, 65536, 70000])
def test_a_text_and_a_binary_frame_of_every_header_size(build, size: int) -> None:
    payload = bytes(i % 251 for i in range(size))
    text = "é" * (size // 2) + "a" * (size % 2)
    data = frame(OP_TEXT, text.encode()) + frame(OP_BINARY, payload)
    status, message, stop = build.next_frame(data, 0, -1)
    assert (status, message) == (build.DATA, text)
    status, message, end = build.next_frame(data, stop, -1)
    assert (status, message, end) == (build.DATA, payload, len(data))
    assert type(message) is bytes
    assert build.next_frame(data, end, -1) == (build.NEED_MORE, None, end)
    # Every cut short of a whole frame waits for more, whether the buffer is bytes or bytearray.
    for cut in sorted(c for c in {0, 1, 2, 3, 5, 9, 13, stop - 1} if c < stop):
        assert build.next_frame(data[:cut], 0, -1) == (build.NEED_MORE, None, 0)
        assert build.next_frame(bytearray(data[:cut]), 0, -1) == (build.NEED_MORE, None, 0)
    assert build.next_frame(bytearray(data), 0, -1) == (build.DATA, text, stop)


@pytest.mark.parametrize("build", BUILDS)
def test_what_the_fast_path_does_not_take(build) -> None:
    hello = b'{"event":"media"}'
    assert build.next_frame(frame(OP_PING, b"hi"), 0, -1) == (build.CONTROL, None, 8)
    assert build.next_frame(frame(OP_CLOSE, b"\x03\xe8"), 0, -1) == (build.CONTROL, None, 8)
    assert build.next_frame(frame(OP_TEXT, hello, fin=False), 0, -1) == (build.OTHER, None, 0)
    assert build.next_frame(frame(OP_CONT, hello), 0, -1) == (build.OTHER, None, 0)
    assert build.next_frame(frame(OP_TEXT, hello, rsv1=True), 0, -1) == (build.OTHER, None, 0)
    assert build.next_frame(frame(OP_TEXT, hello, mask=False), 0, -1) == (build.OTHER, None, 0)
    assert build.next_frame(frame(OP_TEXT, b"\xff\xfe"), 0, -1) == (build.BAD_UTF8, None, 0)
    assert build.next_frame(frame(OP_TEXT, b"\xed\xa0\x80"), 0, -1) == (build.BAD_UTF8, None, 0)  # a surrogate
    # Over the size limit: refused from the header alone, before the payload has arrived.
    big = frame(OP_BINARY, bytes(1000))
    assert build.next_frame(big[:10], 0, 999) == (build.OTHER, None, 0)
    assert build.next_frame(big, 0, 1000)[0] == build.DATA
    # A 64-bit length no read could hold waits (or, with a limit, is refused).
    huge = bytes([0x82, 0xFF]) + (2**62).to_bytes(8, "big") + bytes(4)
    assert build.next_frame(huge, 0, -1) == (build.NEED_MORE, None, 0)
    assert build.next_frame(huge, 0, 2**20) == (build.OTHER, None, 0)
    with pytest.raises(TypeError):
        build.next_frame(memoryview(big), 0, -1)


@settings(max_examples=300, deadline=None)
@given(
    frames=st.lists(
        st.tuples(
            st.sampled_from([OP_TEXT, OP_BINARY, OP_PING, Opcode.PONG, OP_CONT, OP_RESERVED]),
            st.binary(max_size=400) | st.text(max_size=200).map(str.encode),
            st.booleans(),
            st.booleans(),
        ),
        max_size=6,
    ),
    cut=st.integers(min_value=0, max_value=4000),
    max_size=st.sampled_from([-1, 0, 100, 2**20]),
)
def test_both_builds_cut_any_bytes_alike_and_as_websockets_parses_them(frames, cut, max_size) -> None:
    # (a ping or pong is final and at most 125 bytes, or websockets will not write it)
    data = b"".join(
        frame(op, p[:125] if op in CONTROL else p, fin=fin or op in CONTROL, mask=mask) for op, p, fin, mask in frames
    )[:cut]
    builds = [_pure] if _native is None else [_pure, _native]
    for buf in (data, bytearray(data)):
        results = []
        for build in builds:
            pos, seen = 0, []
            while True:
                status, message, stop = build.next_frame(buf, pos, max_size)
                seen.append((status, message, stop))
                if status not in (build.DATA, build.CONTROL):
                    break
                opcode, payload, fin = parse_with_websockets(bytes(buf[pos:stop]))
                assert fin
                if status == build.DATA:
                    assert message == (payload.decode() if opcode == OP_TEXT.value else payload)
                else:
                    assert opcode in (OP_PING.value, OP_CLOSE.value, 0xA)
                pos = stop
            results.append(seen)
        assert all(r == results[0] for r in results)


@pytest.mark.parametrize("build", BUILDS)
@pytest.mark.parametrize("table", [_ULAW_TO_INT16, _ALAW_TO_INT16], ids=["ulaw", "alaw"])
def test_lookup_into_decodes_every_byte_in_place(build, table) -> None:
    codes = bytes(range(256))
    out = np.full(300, 7, dtype=np.int16)
    build.lookup_into(table, codes, out, 20)
    assert (out[20:276] == table).all()
    assert (out[:20] == 7).all() and (out[276:] == 7).all()
    build.lookup_into(table, b"", out, 300)
    with pytest.raises(IndexError):
        build.lookup_into(table, codes, out, 45)
    with pytest.raises(IndexError):
        build.lookup_into(table, b"\x00", out, -1)
    with pytest.raises(ValueError):
        build.lookup_into(table[:128], codes, out, 0)
    frozen = np.zeros(256, dtype=np.int16)
    frozen.flags.writeable = False
    with pytest.raises((ValueError, BufferError)):
        build.lookup_into(table, codes, frozen, 0)


@pytest.mark.parametrize("build", BUILDS)
def test_lookup_into_copies_l16_in_this_machines_byte_order(build) -> None:
    samples = np.array([0, 1, -1, 32767, -32768, 12345], dtype=np.int16)
    out = np.full(10, 7, dtype=np.int16)
    build.lookup_into(COPY, samples.tobytes(), out, 3)
    assert out.tolist() == [7, 7, 7, 0, 1, -1, 32767, -32768, 12345, 7]
    with pytest.raises(ValueError):
        build.lookup_into(COPY, b"\x00\x01\x02", out, 0)  # half a sample
    with pytest.raises(IndexError):
        build.lookup_into(COPY, samples.tobytes(), out, 5)
