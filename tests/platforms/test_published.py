"""Each platform's published example session, detected and played: the audio it carries, sample for sample."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from tests.platforms import published
from tests.platforms.player import CONNECTION_ID, play


@pytest.mark.parametrize("build", published.ALL, ids=lambda build: build().name)
def test_a_published_session_yields_the_audio_it_carries(build: Callable[[], published.Published]) -> None:
    sample = build()

    played = play(sample.messages, route=sample.route, subprotocol=sample.subprotocol)

    started = played.started
    assert started is not None
    assert started.platform is sample.platform
    assert started.call_id == (sample.call_id or CONNECTION_ID)
    assert started.stream_id == (sample.stream_id or CONNECTION_ID)
    audio = played.audio()
    assert set(audio) == set(sample.audio)
    for track, expected in sample.audio.items():
        np.testing.assert_array_equal(audio[track], expected, err_msg=f"{sample.name} {track}")
    assert played.dtmf == sample.dtmf
    assert (played.stopped is not None) == sample.stops
    assert [r["type"] for r in played.replies] == sample.replies
    assert played.pipeline is not None
    readings = {**played.session.readings, **played.pipeline.readings}
    assert sample.readings.items() <= readings.items(), readings


@pytest.mark.parametrize(
    "build",
    [b for b in published.ALL if b().route is None and b().subprotocol is None],
    ids=lambda build: build().name,
)
def test_a_published_session_is_detected_without_a_route(build: Callable[[], published.Published]) -> None:
    sample = build()

    played = play(sample.messages)

    assert played.started is not None and played.started.platform is sample.platform


def test_jambonz_is_detected_from_its_metadata_without_the_subprotocol() -> None:
    sample = published.jambonz()

    played = play(sample.messages)

    assert played.started is not None and played.started.platform is sample.platform
    assert played.started.binary_channels == tuple(sample.audio)


def test_audiohook_replies_carry_their_own_sequence_and_the_clients() -> None:
    played = play(published.audiohook().messages)

    assert [(r["type"], r["seq"], r["clientseq"]) for r in played.replies] == [
        ("opened", 1, 1),
        ("pong", 2, 2),
        ("closed", 3, 3),
    ]
    opened = played.replies[0]
    assert opened["id"] == "e160e428-53e2-487c-977d-96989bf5c99d"
    assert opened["version"] == "2"
    assert opened["parameters"] == {
        "media": [{"type": "audio", "format": "PCMU", "channels": ["external", "internal"], "rate": 8000}],
        "startPaused": False,
    }
