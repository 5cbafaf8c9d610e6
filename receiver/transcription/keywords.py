"""
Keywords found in recognised words: what ``keywords`` means for an engine that writes out every word.

A phrase matches where its words follow one another in an utterance's
words, compared after ``normalise`` (lower case, no surrounding punctuation,
so "Refund." matches "refund"); the match is timed from its first word's
start to its last word's end. Every occurrence counts, overlapping ones too.

Pure: no I/O, no asyncio, no logging.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final, TypeAlias

from receiver.errors import InvalidValue

# (start seconds, end seconds, word)
Word: TypeAlias = tuple[float, float, str]

_PUNCTUATION: Final = "\"'“”‘’.,!?;:()[]{}…-–—¿¡«»"


def normalise(word: str) -> str:
    """A word as keywords compare it: lower case, punctuation around it removed (inside kept: "don't")."""
    return word.strip().strip(_PUNCTUATION).lower()


def parse_phrases(keywords: Iterable[str]) -> tuple[tuple[str, ...], ...]:
    """Keyword phrases as word tuples.

    Raises:
        InvalidValue: A phrase has no words, or ``keywords`` is a single string.
    """
    if isinstance(keywords, str):
        raise InvalidValue("keywords must be a list of phrases")
    phrases = []
    for phrase in keywords:
        if not isinstance(phrase, str):
            raise InvalidValue(f"keyword {phrase!r} is not a string")
        words = tuple(w for w in (normalise(p) for p in phrase.split()) if w)
        if not words:
            raise InvalidValue(f"keyword {phrase!r} has no words")
        if words not in phrases:
            phrases.append(words)
    return tuple(phrases)


def find(phrases: Sequence[tuple[str, ...]], words: Sequence[Word]) -> list[tuple[float, float, str]]:
    """Every occurrence of every phrase in ``words``, in order of start: (start, end, phrase)."""
    said = [normalise(w) for _s, _e, w in words]
    found = []
    for phrase in phrases:
        n = len(phrase)
        for i in range(len(said) - n + 1):
            if tuple(said[i : i + n]) == phrase:
                found.append((words[i][0], words[i + n - 1][1], " ".join(phrase)))
    return sorted(found)
