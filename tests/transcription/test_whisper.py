"""The whisper plugin: a real Whisper model (assembled from packages) on human speech, through the simulator."""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from receiver import cli
from receiver.app import ReceiverServer
from receiver.calls import actions as a
from receiver.config import Settings
from receiver.errors import ConfigError
from receiver.events import Encoding
from receiver.simulator import AudioSpec, Faults, Flow, MediaSpec, RunSettings, WireFormat, run
from receiver.transcription.plugins import plugin_sinks
from receiver.transcription.transcript import Transcript, read_transcript, transcript_path

from ..conftest import wait_streams_done
from .models import BECKETT_TEXT, beckett, require_faster_whisper, whisper_base
from .scoring import word_error_rate

LEAD = 0.5  # seconds of silence before the speech in the streamed file


def _onset(samples: np.ndarray, rate: int) -> float:
    """When speech starts in a clean recording: the first 10 ms window well above its noise floor."""
    frames = samples[: len(samples) // (rate // 100) * (rate // 100)].reshape(-1, rate // 100).astype(np.float64)
    level = np.sqrt(np.mean(frames**2, axis=1))
    return float(np.argmax(level > 0.1 * level.max())) / 100


async def _simulated_call(tmp_path: Path, options: dict[str, Any]) -> tuple[list[Transcript], float]:
    """Beckett read into the caller's track of a simulated call (8 kHz mu-law), whisper listening."""
    speech, rate = beckett()
    source = tmp_path / "caller.wav"
    with wave.open(str(source), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.concatenate([np.zeros(int(LEAD * rate), np.int16), speech, np.zeros(rate, np.int16)]))
    seconds = LEAD + len(speech) / rate + 1
    settings = Settings(
        host="127.0.0.1",
        port=0,
        recordings_dir=str(tmp_path / "recordings"),
        wav=False,
        sink_close_timeout=300,  # a busy machine may take a while to decode the last utterance
        sinks=({"plugin": "whisper", "tracks": ["inbound"], "options": options},),
    )
    async with ReceiverServer(settings) as server:
        flow = Flow(
            actions=(
                a.start_stream(f"ws://127.0.0.1:{server.port}/stream", "inbound", allow_insecure=True),
                a.pause(seconds),
                a.hangup(),
            )
        )
        media = MediaSpec(WireFormat.MINIVOICE, Encoding.MULAW, 8000, {"inbound": AudioSpec("wav", str(source))})
        # On the real-time clock, as a call comes: partial results need audio arriving while earlier audio decodes.
        settings_ = RunSettings(fast=False, allow_insecure=True, open_timeout=10)
        report = await run(flow, media, Faults(), settings_)
        await wait_streams_done(server, limit=300)
    (call,) = report.calls
    return read_transcript(transcript_path(tmp_path / "recordings", call.call_id)), LEAD + _onset(speech, rate)


def test_human_speech_through_the_simulator_is_transcribed_with_words_on_the_media_clock(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One short utterance of a person speaking, 8 kHz mu-law on the wire, the model loaded as in production."""
    options = {"model": str(whisper_base()), "workers": 1, "keywords": ["fail again"], "partials": True}
    # One event loop, not both: the decoding costs seconds of CPU, and the wiring runs on both loops elsewhere.
    events, onset = asyncio.run(_simulated_call(tmp_path, options))

    finals = [e for e in events if e.kind == "transcript" and e.final]
    said = " ".join(e.text for e in finals)
    print(f"said:  {BECKETT_TEXT}\nheard: {said}")
    assert word_error_rate(BECKETT_TEXT, said) <= 0.2, said
    assert all(e.engine == "whisper" and e.track == "inbound" for e in events)
    # Words on the stream's media clock: in order, inside their segment, the first where the speech starts.
    words = [w for e in finals for w in e.words]
    assert all(e.start <= w[0] <= w[1] <= e.end for e in finals for w in e.words)
    assert all(w1[0] <= w2[0] for w1, w2 in zip(words, words[1:], strict=False))
    assert abs(words[0][0] - onset) < 0.4, (words[0], onset)
    # The keyword, timed to the words that said it.
    (keyword,) = [e for e in events if e.kind == "keyword"]
    assert keyword.text == "fail again"
    (fail, again) = [w for w in words if keyword.start <= w[0] < keyword.end]
    assert (fail[0], again[1]) == (keyword.start, keyword.end)
    # The first partial result always comes: nothing is decoding when the first utterance reaches one second.
    partials = [e for e in events if not e.final]
    assert partials and partials[0].start <= words[0][0]

    assert cli.main(["transcript", partials[0].call_id, "--recordings-dir", str(tmp_path / "recordings")]) == 0
    assert "caller: <keyword> fail again  (whisper)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"model": "/nonexistent/model"}, "not a directory"),
        ({"model": "huge-v9"}, "not a directory, nor one of the names"),
        ({"compute_type": "int3"}, "compute_type 'int3'"),
        ({"beam_size": 0}, "beam_size"),
        ({"partial_seconds": 0.01, "partials": True}, "partial_seconds"),
        ({"keywords": "refund"}, "list of phrases"),
        ({"keywords": ["  "]}, "has no words"),
        ({"vad": {"aggressiveness": 7}}, "aggressiveness"),
        ({"modle": "base"}, "unexpected keyword argument 'modle'"),
    ],
)
def test_bad_options_stop_the_receiver_at_start_up(tmp_path: Path, options: dict[str, Any], message: str) -> None:
    require_faster_whisper()
    settings = Settings(recordings_dir=str(tmp_path), sinks=({"plugin": "whisper", "options": options},))

    with pytest.raises(ConfigError, match=message):
        plugin_sinks(settings)


def test_a_model_directory_without_a_model_is_refused(tmp_path: Path) -> None:
    require_faster_whisper()
    (tmp_path / "config.json").write_text("{}")
    settings = Settings(
        recordings_dir=str(tmp_path), sinks=({"plugin": "whisper", "options": {"model": str(tmp_path)}},)
    )

    with pytest.raises(ConfigError, match="has no model.bin"):
        plugin_sinks(settings)
