"""The compiled build (receiver/_native.pyx) against the pure-Python one (receiver/_pure.py): same results, same errors."""

from __future__ import annotations

import mmap
import os
import subprocess
import sys
from pathlib import Path

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
        assert all(speedups.compiled_sources().values()), speedups.compiled_sources()
        assert speedups.build() == "compiled"
    assert speedups.COMPILED is (not pure and _native is not None)
    assert (speedups.next_frame is _pure.next_frame) is not speedups.COMPILED
    if pure:
        assert not any(speedups.compiled_sources().values())
        assert speedups.build() == "pure Python"


def test_the_modules_compiled_from_their_source_are_those_the_media_path_imports() -> None:
    import receiver.counters
    import receiver.mediaclock
    import receiver.platforms._typed
    import receiver.platforms.minivoice
    import receiver.ringbuffer
    import receiver.session
    import receiver.stream.fastpath
    import receiver.stream.handler
    import receiver.stream.pipeline

    modules = (
        receiver.counters,
        receiver.mediaclock,
        receiver.platforms._typed,
        receiver.platforms.minivoice,
        receiver.ringbuffer,
        receiver.session,
        receiver.stream.fastpath,
        receiver.stream.handler,
        receiver.stream.pipeline,
    )
    assert {m.__name__ for m in modules} == set(receiver.COMPILED_SOURCES)
    # setup.py compiles the modules with a .pxd beside them: the same list.
    root = Path(receiver.__file__).parent.parent
    pxd = {".".join(p.relative_to(root).with_suffix("").parts) for p in (root / "receiver").rglob("*.pxd")}
    assert pxd == set(receiver.COMPILED_SOURCES)
    for module in modules:
        compiled = not module.__file__.endswith(".py")  # type: ignore[union-attr]
        assert compiled is speedups.compiled_sources()[module.__name__]


def test_the_pure_build_can_be_asked_for() -> None:
    code = (
        "import receiver.speedups as s, receiver._pure as p, receiver.mediaclock as m, receiver.stream.pipeline as q;"
        "print(s.COMPILED, s.ring_write is p.ring_write, m.__file__.endswith('.py'), q.__file__.endswith('.py'))"
    )
    compiled = _native is not None  # an install compiles every part, or none (no C compiler)
    for value, expected in (
        ("1", "False True True True"),
        ("0", f"{compiled} {not compiled} {not compiled} {not compiled}"),
    ):
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


def reference_ring(table: np.ndarray, codes: bytes, ring: np.ndarray, head: int) -> np.ndarray:
    """What ``ring_write`` must leave in ``ring``: sample ``head + k`` at ``(head + k) % len(ring)``, in order."""
    samples = np.frombuffer(codes, np.int16) if not len(table) else table[np.frombuffer(codes, np.uint8)]
    expected = ring.copy()
    for k, sample in enumerate(samples):
        expected[(head + k) % len(ring)] = sample
    return expected


@settings(max_examples=300, deadline=None)
@given(
    table=st.sampled_from([_ULAW_TO_INT16, _ALAW_TO_INT16, COPY]),
    codes=st.binary(max_size=600),
    cap=st.integers(min_value=1, max_value=400),
    head=st.integers(min_value=0, max_value=10**6),
    as_buffers=st.booleans(),
)
def test_both_builds_write_round_the_ring_as_indexing_it_would(table, codes, cap, head, as_buffers) -> None:
    """Arrays, or (as the stream pipeline passes them) the table as a memoryview and the ring as a map."""
    if not len(table):
        codes = codes[: len(codes) // 2 * 2]
    n = len(codes) // (2 if not len(table) else 1)
    for build in BUILDS:
        ring = np.arange(cap, dtype=np.int16)
        expected = reference_ring(table, codes, ring, head)
        if as_buffers:
            mapped = mmap.mmap(-1, ring.nbytes)
            mapped[:] = ring.tobytes()
            assert build.values[0].ring_write(table.data, codes, mapped, head) == head + n
            ring = np.frombuffer(mapped, np.int16).copy()
            mapped.close()
        else:
            assert build.values[0].ring_write(table, codes, ring, head) == head + n
        assert np.array_equal(ring, expected)


@settings(max_examples=300, deadline=None)
@given(
    table=st.sampled_from([_ULAW_TO_INT16, _ALAW_TO_INT16, COPY]),
    codes=st.binary(max_size=900),
    channels=st.integers(min_value=2, max_value=3),
    data=st.data(),
    cap=st.integers(min_value=1, max_value=400),
    head=st.integers(min_value=0, max_value=10**6),
)
def test_both_builds_write_one_channel_of_interleaved_audio_as_indexing_it_would(
    table, codes, channels, data, cap, head
) -> None:
    """jambonz's and AudioHook's stereo frames: one channel's samples, every ``channels``-th."""
    width = 2 if not len(table) else 1
    codes = codes[: len(codes) // (width * channels) * width * channels]
    channel = data.draw(st.integers(min_value=0, max_value=channels - 1))
    # The channel's own samples, as one track would send them.
    mono = b"".join(codes[i : i + width] for i in range(channel * width, len(codes), width * channels))
    for build in BUILDS:
        ring = np.arange(cap, dtype=np.int16)
        expected = reference_ring(table, mono, ring, head)
        assert build.values[0].ring_write(table, codes, ring, head, channel, channels) == head + len(mono) // width
        assert np.array_equal(ring, expected)


@pytest.mark.parametrize("build", BUILDS)
def test_ring_write_refuses_interleaved_audio_it_cannot_split(build) -> None:
    ring = np.zeros(8, dtype=np.int16)
    with pytest.raises(ValueError):
        build.ring_write(COPY, b"\x00\x01\x02\x03\x04\x05", ring, 0, 0, 2)  # a sample of one channel only
    with pytest.raises(ValueError):
        build.ring_write(_ULAW_TO_INT16, b"\x00\x01\x02", ring, 0, 1, 2)
    with pytest.raises(ValueError):
        build.ring_write(_ULAW_TO_INT16, b"\x00\x01", ring, 0, 2, 2)  # no third channel
    with pytest.raises(ValueError):
        build.ring_write(_ULAW_TO_INT16, b"\x00\x01", ring, 0, -1, 2)
    with pytest.raises(ValueError):
        build.ring_write(_ULAW_TO_INT16, b"\x00\x01", ring, 0, 0, 0)
    assert ring.tolist() == [0] * 8


@pytest.mark.parametrize("build", BUILDS)
def test_ring_write_refuses_what_it_cannot_write(build) -> None:
    ring = np.zeros(8, dtype=np.int16)
    with pytest.raises(ValueError):
        build.ring_write(_ULAW_TO_INT16[:128], b"\x00", ring, 0)  # not a G.711 table
    with pytest.raises(ValueError):
        build.ring_write(COPY, b"\x00\x01\x02", ring, 0)  # half a sample
    with pytest.raises(ValueError):
        build.ring_write(COPY, b"", np.zeros(0, dtype=np.int16), 0)  # an empty ring
    with pytest.raises(ValueError):
        build.ring_write(COPY, b"", ring, -1)
    frozen = np.zeros(8, dtype=np.int16)
    frozen.flags.writeable = False
    with pytest.raises((ValueError, BufferError)):
        build.ring_write(_ULAW_TO_INT16, b"\x00", frozen, 0)
    closed = mmap.mmap(-1, 16)
    closed.close()
    with pytest.raises(ValueError):
        build.ring_write(_ULAW_TO_INT16.data, b"\x00", closed, 0)  # a released ring buffer's map
    assert ring.tolist() == [0] * 8
