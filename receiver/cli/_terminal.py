"""
Text for a terminal from values others chose: call ids, numbers and event
names come from webhooks and streams, i.e. from whoever can reach the ports.
"""

from __future__ import annotations

import unicodedata
from typing import Final

# Cc: C0 and C1 controls, DEL (ESC starts every terminal escape sequence, \r rewrites a line).
# Cf: format characters (bidi overrides that reorder what is shown, zero-width characters).
# Zl, Zp: line and paragraph separators. Cs: lone surrogates from a bad decode.
_HIDDEN: Final = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


def printable(value: object) -> str:
    """``str(value)`` with every control or format character written as an escape (``\\x1b``, ``\\u202e``).

    For human output only: JSON output stays exact.
    """
    text = str(value)
    if text.isprintable():  # the common case, and it covers every character we escape
        return text
    return "".join(_escape(ch) if unicodedata.category(ch) in _HIDDEN else ch for ch in text)


def _escape(ch: str) -> str:
    code = ord(ch)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"
