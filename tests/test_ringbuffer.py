"""TrackBuffer against a model: a naively concatenated array."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from receiver.ringbuffer import TrackBuffer


@given(
    capacity=st.integers(1, 64),
    writes=st.lists(st.tuples(st.booleans(), st.integers(0, 150)), max_size=30),
    n=st.integers(0, 80),
)
def test_latest_equals_the_tail_of_everything_written(capacity: int, writes: list[tuple[bool, int]], n: int) -> None:
    buf = TrackBuffer(capacity)
    model = np.zeros(0, dtype=np.int16)
    counter = 1
    for silence, size in writes:
        if silence:
            chunk = np.zeros(size, dtype=np.int16)
            start = buf.write_silence(size)
        else:
            chunk = np.arange(counter, counter + size, dtype=np.int64).astype(np.int16)
            counter += size
            start = buf.write(chunk)
        assert start == len(model)
        model = np.concatenate([model, chunk])

    assert buf.head == len(model)
    assert buf.oldest == max(0, len(model) - capacity)
    assert np.array_equal(buf.latest(n), model[max(len(model) - min(n, capacity), 0) :][-n:] if n else model[:0])


@given(capacity=st.integers(1, 50), sizes=st.lists(st.integers(0, 70), max_size=20), data=st.data())
def test_read_returns_any_held_range(capacity: int, sizes: list[int], data: st.DataObject) -> None:
    buf = TrackBuffer(capacity)
    model = np.zeros(0, dtype=np.int16)
    for size in sizes:
        chunk = np.arange(len(model), len(model) + size, dtype=np.int64).astype(np.int16)
        buf.write(chunk)
        model = np.concatenate([model, chunk])
    start = data.draw(st.integers(buf.oldest, buf.head))
    end = data.draw(st.integers(start, buf.head))

    assert np.array_equal(buf.read(start, end), model[start:end])


def test_read_of_overwritten_or_future_samples_fails() -> None:
    buf = TrackBuffer(4)
    buf.write(np.arange(10, dtype=np.int16))

    with pytest.raises(ValueError):
        buf.read(5, 8)
    with pytest.raises(ValueError):
        buf.read(8, 11)


def test_read_returns_a_copy() -> None:
    buf = TrackBuffer(8)
    buf.write(np.ones(4, dtype=np.int16))

    out = buf.read(0, 4)
    out[:] = 9

    assert buf.read(0, 4).tolist() == [1, 1, 1, 1]


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError):
        TrackBuffer(0)


def test_release_unmaps_the_samples() -> None:
    buf = TrackBuffer(8)
    buf.write(np.ones(4, dtype=np.int16))

    buf.release()
    buf.release()  # idempotent

    assert buf.released
    with pytest.raises(ValueError):  # the closed map: the fast path's ring write refuses it
        buf.write_lookup(np.zeros(256, dtype=np.int16).data, b"\x00")


def test_release_with_a_view_still_held_drops_the_samples() -> None:
    """A view keeps the mapping open, but its pages go back to the OS: it reads zeros.

    (An anonymous mapping must be private for that: a shared one is shmem,
    which ``MADV_DONTNEED`` leaves allocated, and the view still read the samples.)
    """
    rate = 8000
    buf = TrackBuffer(10 * rate)
    buf.write(np.full(10 * rate, 7, dtype=np.int16))
    view = np.frombuffer(buf._map, dtype=np.int16)  # a view still held elsewhere

    buf.release()

    assert not view.any()
