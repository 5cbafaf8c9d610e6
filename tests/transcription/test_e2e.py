"""End to end: espeak-ng speech streamed as 8 kHz mu-law, transcribed by the built-in engine."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from receiver import cli
from receiver.app import ReceiverServer
from receiver.config import Settings
from receiver.events import Track
from receiver.transcription.audio import convert
from receiver.transcription.sphinx import Result, SphinxOptions, transcribe
from receiver.transcription.transcript import read_transcript, transcript_path

from ..conftest import wait_streams_done
from .helpers import needs_espeak, save_wav, speak, stream_call, telephone

pytestmark = needs_espeak

KEYWORD = "cancel my order"


def _trim(x: np.ndarray, threshold: int = 300) -> np.ndarray:
    loud = np.nonzero(np.abs(x) > threshold)[0]
    return x[loud[0] : loud[-1] + 1]


def _calls() -> tuple[np.ndarray, np.ndarray, float, float]:
    """The caller says the keyword inside a sentence (we know exactly when); the agent says something else."""
    before, keyword, after = (_trim(speak(t)) for t in ("I would like to", KEYWORD, "please"))
    gap = np.zeros(800, dtype=np.int16)
    lead = np.zeros(8000, dtype=np.int16)
    inbound = np.concatenate([lead, before, gap, keyword, gap, after, np.zeros(4000, dtype=np.int16)])
    start = (len(lead) + len(before) + len(gap)) / 8000
    outbound = np.concatenate([np.zeros(4000, dtype=np.int16), speak("thank you for calling how can I help you today")])
    return inbound, outbound, start, start + len(keyword) / 8000


@pytest.fixture(scope="module")
def call(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, np.ndarray, np.ndarray, float, float, dict[Track, list[Result]]]:
    """The call's source files, and the engine's transcript of the caller's, decoded offline from its file."""
    inbound, outbound, keyword_start, keyword_end = _calls()
    sources = tmp_path_factory.mktemp("sources")
    offline = {}
    save_wav(sources / "agent.wav", outbound, 8000)
    save_wav(sources / "caller.wav", inbound, 8000)
    with wave.open(str(sources / "caller.wav")) as w:
        source = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    offline[Track.INBOUND] = transcribe(convert(telephone(source), 8000, 16000))
    return sources, inbound, outbound, keyword_start, keyword_end, offline


async def test_keyword_found_on_the_caller_track_only_and_stream_transcript_equals_offline(
    call, tmp_path, capsys
) -> None:
    _sources, inbound, outbound, keyword_start, keyword_end, offline = call
    recordings = tmp_path / "recordings"
    settings = Settings(
        host="127.0.0.1",
        port=0,
        recordings_dir=str(recordings),
        sink_close_timeout=120,  # a busy machine may take a while to decode the last utterances
        sinks=(
            {"plugin": "pocketsphinx", "name": "spotter", "options": {"keywords": [KEYWORD]}},
            {"plugin": "pocketsphinx", "name": "sphinx", "tracks": ["inbound"]},
            {"plugin": "vad"},
        ),
    )
    async with ReceiverServer(settings) as server:
        await stream_call(server.port, inbound, outbound, call_id="call_e2e")
        await wait_streams_done(server, limit=150)
    events = read_transcript(transcript_path(recordings, "call_e2e"))

    keywords = [e for e in events if e.engine == "spotter"]
    assert [(e.track, e.text, e.kind) for e in keywords] == [("inbound", KEYWORD, "keyword")]
    assert abs(keywords[0].start - keyword_start) < 0.5
    assert abs(keywords[0].end - keyword_end) < 0.5
    assert (recordings / "call_e2e" / "str_test.inbound.wav").is_file()

    # The caller's audio decoded offline, from the source file: the same transcript.
    streamed = [(e.track, e.start, e.end, e.text) for e in events if e.engine == "sphinx"]
    assert offline[Track.INBOUND], "the engine heard nothing"
    assert streamed == [("inbound", round(s, 3), round(e, 3), text) for s, e, text, _kind in offline[Track.INBOUND]]
    # Who spoke when: the VAD saw both.
    assert {e.track for e in events if e.engine == "vad"} == {"inbound", "outbound"}
    offline_keywords = transcribe(convert(telephone(outbound), 8000, 16000), SphinxOptions.parse(keywords=[KEYWORD]))
    assert offline_keywords == []

    assert cli.main(["transcript", "call_e2e", "--recordings-dir", str(recordings)]) == 0
    dialogue = capsys.readouterr().out
    assert f"caller: <keyword> {KEYWORD}" in dialogue
    assert " agent: (speech)" in dialogue
