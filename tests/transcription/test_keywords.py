"""Keywords in recognised words (the whisper plugin's ``keywords``): pure."""

from __future__ import annotations

import pytest

from receiver.transcription.keywords import find, normalise, parse_phrases

WORDS = [
    (0.0, 0.3, "Hello,"),
    (0.4, 0.6, "I'd"),
    (0.6, 0.9, "like"),
    (1.0, 1.4, "to"),
    (1.4, 1.8, "Cancel"),
    (1.8, 2.0, "my"),
    (2.0, 2.5, "order."),
    (3.0, 3.5, "A"),
    (3.5, 4.0, "refund!"),
    (4.5, 5.0, "Refund?"),
]


def test_phrases_match_across_case_and_punctuation_and_are_timed_to_their_words() -> None:
    phrases = parse_phrases(["cancel my order", "Refund"])

    assert find(phrases, WORDS) == [(1.4, 2.5, "cancel my order"), (3.5, 4.0, "refund"), (4.5, 5.0, "refund")]


def test_a_phrase_must_be_said_in_order_and_whole() -> None:
    assert find(parse_phrases(["my cancel order", "order a refund now", "i'd like"]), WORDS) == [(0.4, 0.9, "i'd like")]


def test_normalise_keeps_inner_apostrophes() -> None:
    assert [normalise(w) for w in ["Don't", "“Refund”", "order...", "—"]] == ["don't", "refund", "order", ""]


@pytest.mark.parametrize(
    ("keywords", "message"), [("refund", "list of phrases"), (["..."], "no words"), ([3], "not a string")]
)
def test_bad_keywords_are_refused(keywords: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_phrases(keywords)  # type: ignore[arg-type]


def test_the_same_phrase_twice_is_searched_once() -> None:
    assert parse_phrases(["Refund", "refund."]) == (("refund",),)
