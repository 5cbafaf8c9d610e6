"""The built-in engine's modes, decoded offline (the same code the plugin runs in its workers)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from receiver.transcription.audio import convert
from receiver.transcription.sphinx import SphinxOptions, transcribe

from .helpers import needs_espeak, speak, telephone

pytestmark = needs_espeak

MENU = """#JSGF V1.0;
grammar menu;
public <choice> = billing | speak to an agent | cancel my account;
"""


def _phone(text: str, lead: float = 0.5) -> np.ndarray:
    audio = np.concatenate([np.zeros(int(8000 * lead), dtype=np.int16), speak(text), np.zeros(4000, dtype=np.int16)])
    return convert(telephone(audio), 8000, 16000)


@pytest.mark.parametrize("said", ["billing", "speak to an agent"])
def test_a_grammar_recognises_a_phone_menu_choice(tmp_path: Path, said: str) -> None:
    grammar = tmp_path / "menu.gram"
    grammar.write_text(MENU)

    [(start, end, text, kind)] = transcribe(_phone(said), SphinxOptions.parse(grammar=str(grammar)))

    assert (text, kind) == (said, "transcript")
    assert 0.4 <= start < end <= 0.5 + len(speak(said)) / 8000 + 0.2


def test_keywords_are_timed_on_the_track_clock() -> None:
    results = transcribe(
        _phone("I would like to cancel my order please", lead=2.0),
        SphinxOptions.parse(keywords={"cancel my order": 1e-20}),
    )

    assert [(text, kind) for _s, _e, text, kind in results] == [("cancel my order", "keyword")]
    assert 2.5 < results[0][0] < 3.0


def test_silence_gives_no_transcript() -> None:
    assert transcribe(np.zeros(16000 * 2, dtype=np.int16)) == []


def test_a_keyword_is_spotted_in_every_pronunciation_of_its_words() -> None:
    """ "a refund" is REE-fund, the dictionary's second pronunciation (refund(2)); the first is re-FUND.

    The spotter used to search the first only, and missed the word said twice here at any threshold.
    """
    audio = _phone("I want a refund. Yes, a refund, please.")

    every = transcribe(audio, SphinxOptions.parse(keywords=["refund"]))
    first_only = transcribe(audio, SphinxOptions.parse(keywords=["refund"], variants=False))

    assert [(text, kind) for _s, _e, text, kind in every] == [("refund", "keyword")] * 2
    assert 0.9 < every[0][0] < 1.6 < every[1][0] < 3.0  # once per occurrence, not once per pronunciation
    assert first_only == []
