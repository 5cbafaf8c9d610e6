"""The counter classes (compiled as C classes where the install compiled the media path) behave as dataclasses did."""

from __future__ import annotations

import pytest

from receiver.mediaclock import TrackStats
from receiver.session import SessionStats


@pytest.mark.parametrize("kind", [SessionStats, TrackStats])
def test_counters_compare_print_and_list_like_a_dataclass(kind: type) -> None:
    fields = kind.__slots__
    a = kind(**{name: i for i, name in enumerate(fields)})
    b = kind(*range(len(fields)))  # positional, in the same order

    assert a == b
    assert (a != b) is False  # __ne__ as well as __eq__
    assert a.as_dict() == {name: i for i, name in enumerate(fields)}
    assert repr(a) == f"{kind.__name__}(" + ", ".join(f"{n}={i}" for i, n in enumerate(fields)) + ")"
    setattr(b, fields[-1], 99)
    assert a != b and a != kind() and kind() == kind()
    assert a != a.as_dict()  # another type is never equal
    with pytest.raises(TypeError):
        hash(a)  # mutable counters: not hashable, as a dataclass without frozen=True


def test_a_counter_is_an_int_with_no_bound() -> None:
    stats = SessionStats()
    stats.messages += 2**70  # Python's arithmetic in both builds: no overflow
    assert stats.messages == 2**70
