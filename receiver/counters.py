"""
The base of the counter classes (``SessionStats``, the media clock's ``TrackStats``). Pure.

They are plain classes, not dataclasses, because the compiled build makes them
C classes (``counters.pxd`` and theirs), whose counters the media path adds to
with no attribute lookup; and a compiled class cannot take ``slots=True``. Each
names its fields once, in ``__slots__``; ``Counters`` gives it what a dataclass
would: ``==`` (not hashable, as a mutable dataclass), ``repr`` and ``as_dict``.
"""

from __future__ import annotations


class Counters:
    """What a counter class inherits: its ``__slots__`` are its counters."""

    __slots__ = ()

    def as_dict(self) -> dict[str, int]:
        """Every counter, in ``__slots__`` order."""
        names: tuple[str, ...] = type(self).__slots__
        return {name: getattr(self, name) for name in names}

    def __eq__(self, other: object) -> bool:
        """The same class, and the same counts."""
        return type(other) is type(self) and self.as_dict() == other.as_dict()

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={value!r}" for name, value in self.as_dict().items())
        return f"{type(self).__name__}({fields})"
