"""
What the counter classes share (``SessionStats``, the media clock's ``TrackStats``). Pure.

They are plain classes, not dataclasses, because the compiled build makes them
C classes (their ``.pxd``), whose counters the media path adds to with no
attribute lookup; and a compiled class cannot take ``slots=True``. Each names
its fields once, in ``__slots__``; these give it what a dataclass would.
"""

from __future__ import annotations

from typing import Any


def as_dict(counters: Any) -> dict[str, int]:
    """Every counter of ``counters``, in ``__slots__`` order."""
    return {name: getattr(counters, name) for name in type(counters).__slots__}


def same(counters: Any, other: object) -> bool:
    """``==`` as a dataclass has it: the same class, and the same counts."""
    return type(other) is type(counters) and as_dict(counters) == as_dict(other)


def describe(counters: Any) -> str:
    """``repr`` as a dataclass has it."""
    fields = ", ".join(f"{name}={value!r}" for name, value in as_dict(counters).items())
    return f"{type(counters).__name__}({fields})"
