"""Utterance segmentation: who spoke when, whatever the block sizes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from receiver.app import ReceiverServer
from receiver.config import Settings
from receiver.transcription.transcript import read_transcript, transcript_path
from receiver.transcription.vad import Segmenter, VadOptions

from ..conftest import wait_streams_done
from .helpers import needs_espeak, speak, stream_call

pytestmark = needs_espeak


def _silence(seconds: float, rate: int = 16000) -> np.ndarray:
    return np.zeros(int(seconds * rate), dtype=np.int16)


@pytest.fixture(scope="module")
def two_phrases() -> tuple[np.ndarray, list[float]]:
    first, second = speak("good morning", rate=16000), speak("see you tomorrow", rate=16000)
    track = np.concatenate([_silence(0.5), first, _silence(1.2), second, _silence(0.6)])
    return track, [0.5, 0.5 + (len(first) + 1.2 * 16000) / 16000]


def _segment(track: np.ndarray, sizes: list[int], options: VadOptions | None = None) -> list[tuple[int, int]]:
    segmenter = Segmenter(16000, options)
    out, offset, i = [], 0, 0
    while offset < len(track):
        size = sizes[i % len(sizes)]
        out += segmenter.push(track[offset : offset + size])
        offset += size
        i += 1
    out += segmenter.flush()
    return [(u.start, u.end) for u in out]


def test_each_phrase_is_one_utterance_near_where_it_was_spoken(two_phrases: tuple[np.ndarray, list[float]]) -> None:
    track, starts = two_phrases
    segments = _segment(track, [320])

    assert len(segments) == 2
    for (start, end), spoken in zip(segments, starts, strict=True):
        assert abs(start / 16000 - spoken) < 0.4
        assert end > start
    assert segments[0][1] < segments[1][0]


def test_segments_do_not_depend_on_block_sizes(two_phrases: tuple[np.ndarray, list[float]]) -> None:
    track, _ = two_phrases

    assert _segment(track, [320]) == _segment(track, [7, 1000, 481, 13]) == _segment(track, [len(track)])


def test_long_speech_is_split_at_max_seconds(two_phrases: tuple[np.ndarray, list[float]]) -> None:
    track, _ = two_phrases
    segments = _segment(track, [320], VadOptions(max_seconds=1.0, silence_ms=2000))

    assert len(segments) >= 2
    assert all(end - start <= 16000 for start, end in segments)


def test_silence_and_hum_are_not_speech() -> None:
    t = np.arange(32000) / 16000
    hum = (300 * np.sin(2 * np.pi * 50 * t)).astype(np.int16)

    assert _segment(np.concatenate([_silence(2.0), hum]), [480]) == []


async def test_the_vad_plugin_tells_who_spoke_when(tmp_path: Path) -> None:
    caller, agent = speak("hello I have a question"), speak("sure go ahead")
    lead = np.zeros(8000, dtype=np.int16)
    inbound = np.concatenate([lead, caller, np.zeros(len(agent) + 8000, dtype=np.int16)])
    outbound = np.concatenate(
        [lead, np.zeros(len(caller) + 4000, dtype=np.int16), agent, np.zeros(4000, dtype=np.int16)]
    )
    settings = Settings(host="127.0.0.1", port=0, recordings_dir=str(tmp_path), wav=False, sinks=({"plugin": "vad"},))
    async with ReceiverServer(settings) as server:
        await stream_call(server.port, inbound, outbound, call_id="call_vad")
        await wait_streams_done(server)
    events = read_transcript(transcript_path(tmp_path, "call_vad"))

    assert [(e.track, e.kind, e.engine) for e in events] == [
        ("inbound", "speech", "vad"),
        ("outbound", "speech", "vad"),
    ]
    assert abs(events[0].start - 1.0) < 0.4
    assert abs(events[1].start - (1.5 + len(caller) / 8000)) < 0.4
