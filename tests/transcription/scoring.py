"""
Word error rate as scripts/wer.py and the tests count it: both sides normalised the same way.

Normalisation: lower case, hyphens as spaces, punctuation dropped, numbers
spelled out ("10" is "ten"), Mr/Mrs/Dr written in full: what engines write
differently without hearing differently.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

_ONES: Final = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS: Final = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_SPELLED: Final = {"mr": "mister", "mrs": "missus", "dr": "doctor", "ok": "okay"}


def number(n: int) -> str:
    """``n`` in words (digit by digit from a million on)."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    if n < 1000:
        return _ONES[n // 100] + " hundred" + ("" if n % 100 == 0 else " " + number(n % 100))
    if n < 1_000_000:
        return number(n // 1000) + " thousand" + ("" if n % 1000 == 0 else " " + number(n % 1000))
    return " ".join(_ONES[int(d)] for d in str(n))


def normalise(text: str) -> list[str]:
    """Words as WER compares them."""
    words = []
    for token in re.findall(r"[a-z0-9']+", text.lower().replace("-", " ")):
        token = token.strip("'")
        if token.isdigit():
            words.extend(number(int(token)).split())
        elif token:
            words.append(_SPELLED.get(token, token))
    return words


def edits(reference: Sequence[str], hypothesis: Sequence[str]) -> int:
    """Word-level Levenshtein distance: substitutions + deletions + insertions."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, start=1):
        current = [i]
        for j, hyp in enumerate(hypothesis, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref != hyp)))
        previous = current
    return previous[-1]


def word_error_rate(reference: str, hypothesis: str) -> float:
    ref = normalise(reference)
    return edits(ref, normalise(hypothesis)) / max(len(ref), 1)
