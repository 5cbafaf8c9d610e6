"""Property tests (hypothesis) over the parsers, the session and the media clock,
and a smoke run of the coverage-guided atheris harness in ``fuzz/``."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from receiver.events import Track
from receiver.mediaclock import MediaClock
from receiver.ringbuffer import TrackBuffer
from receiver.testing import MiniVoiceMessages, TwilioMessages

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from fuzz.targets import check_clock, parse_one, run_session  # noqa: E402

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
KEYS = [
    "event", "protocol", "version", "sequence_number", "sequenceNumber", "stream_id", "streamSid", "start", "media",
    "media_format", "mediaFormat", "encoding", "sample_rate", "sampleRate", "tracks", "track", "chunk", "timestamp",
    "payload", "call_id", "callSid", "custom_parameters", "customParameters", "dtmf", "digit", "stop", "mark", "name",
]  # fmt: skip


def _stream_script(
    platform: str, encoding: str, rate: int, tracks: tuple[str, ...], frames: list[tuple[int, int, int]]
) -> list[str]:
    if platform == "minivoice":
        mv = MiniVoiceMessages()
        script = [mv.connected(), mv.start(tracks=tracks, encoding=encoding, sample_rate=rate)]
        for i, (track, timestamp, size) in enumerate(frames):
            script.append(mv.media(tracks[track % len(tracks)], i + 1, timestamp, bytes(range(256))[:size] * 2))
        script += [mv.dtmf("5", 40), mv.stop()]
        return script
    tw = TwilioMessages(signalwire=platform == "signalwire")
    script = [tw.connected(), tw.start(tracks=tracks, encoding=encoding, sample_rate=rate)]
    for i, (track, timestamp, size) in enumerate(frames):
        script.append(tw.media(tracks[track % len(tracks)], i + 1, timestamp, bytes(range(256))[:size] * 2))
    return [*script, tw.stop()]


@st.composite
def mutated(draw: st.DrawFn, value: Any, depth: int = 0) -> Any:
    """``value`` with a few keys deleted, replaced or added, anywhere in it."""
    if isinstance(value, dict):
        out = dict(value)
        for key in list(out):
            choice = draw(st.integers(0, 9))
            if choice == 0:
                del out[key]
            elif choice == 1:
                out[key] = draw(json_values)
            elif choice <= 3 and depth < 4:
                out[key] = draw(mutated(out[key], depth + 1))
        if draw(st.integers(0, 9)) == 0:
            out[draw(st.sampled_from(KEYS))] = draw(json_values)
        return out
    if isinstance(value, list) and value and draw(st.booleans()):
        return [draw(mutated(v, depth + 1)) for v in value]
    return value


@st.composite
def streams(draw: st.DrawFn) -> list[str | bytes]:
    platform = draw(st.sampled_from(["minivoice", "twilio", "signalwire"]))
    encoding = draw(st.sampled_from(["audio/x-mulaw", "audio/x-alaw", "audio/l16", "audio/x-L16", "audio/opus"]))
    rate = draw(st.sampled_from([8000, 16000, 24000, 44100, 0, -1]))
    tracks = draw(st.sampled_from([("inbound",), ("outbound",), ("inbound", "outbound")]))
    frames = draw(st.lists(st.tuples(st.integers(0, 1), st.integers(-100, 200_000), st.integers(0, 200)), max_size=25))
    texts: list[str | bytes] = list(_stream_script(platform, encoding, rate, tracks, frames))
    ops = draw(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 10_000)), max_size=8))
    for op, at in ops:
        if not texts:
            break
        i = at % len(texts)
        if op == 0:
            texts.insert(i, texts[i])  # duplicate
        elif op == 1:
            del texts[i]  # lost
        elif op == 2:
            texts[i], texts[-1] = texts[-1], texts[i]  # reordered
        elif op == 3:
            texts[i] = texts[i][: at % (len(texts[i]) + 1)]  # truncated
        elif op == 4:
            with contextlib.suppress(ValueError):  # a truncated message is no JSON: leave it
                texts[i] = json.dumps(draw(mutated(json.loads(texts[i]))))
        else:
            texts.insert(i, draw(st.text(max_size=30) | st.binary(max_size=30) | json_values.map(json.dumps)))
    return texts


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(message=st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), json_values, max_size=6))
def test_parsers_on_any_json_object_give_an_event_none_or_a_documented_error(message: dict[str, Any]) -> None:
    parse_one(message)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), platform=st.sampled_from(["minivoice", "twilio", "signalwire"]))
def test_parsers_on_mutated_real_messages(data: st.DataObject, platform: str) -> None:
    for text in _stream_script(platform, "audio/x-mulaw", 8000, ("inbound", "outbound"), [(0, 0, 160), (1, 0, 160)]):
        parse_one(data.draw(mutated(orjson.loads(text))))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(texts=streams())
def test_session_on_any_message_sequence_gives_events_none_or_a_protocol_error(texts: list[str | bytes]) -> None:
    run_session(texts)


@settings(max_examples=200, deadline=None)
@given(texts=st.lists(st.text(max_size=60) | st.binary(max_size=60), max_size=10))
def test_session_on_arbitrary_text(texts: list[str | bytes]) -> None:
    run_session(texts)


placements = st.lists(
    st.tuples(
        st.sampled_from([Track.INBOUND, Track.OUTBOUND]),
        st.one_of(st.none(), st.integers(0, 5_000), st.integers(-(10**6), 10**9)),  # timestamp (ms)
        st.one_of(st.none(), st.integers(-5, 300)),  # chunk
        st.integers(0, 400),  # samples
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(
    frames=placements, both=st.booleans(), window=st.sampled_from([0, 80, 800]), max_gap=st.sampled_from([160, 16_000])
)
def test_media_clock_keeps_every_track_the_same_length_and_in_bounds(
    frames: list[tuple[Track, int | None, int | None, int]], both: bool, window: int, max_gap: int
) -> None:
    tracks = (Track.INBOUND, Track.OUTBOUND) if both else (Track.INBOUND,)
    clock = MediaClock(
        {t: TrackBuffer(4000) for t in tracks}, sample_rate=8000, window=window, max_gap=max_gap, frame_samples=160
    )
    placed = 0
    for track, timestamp, chunk, n in frames:
        clock.place(track, timestamp, chunk, np.full(n, 7, dtype=np.int16))
        placed += n
        check_clock(clock)
        # The clock never runs further than the audio given plus the gaps it may fill.
        assert clock.head <= placed + len(frames) * max_gap + window
    clock.flush()
    check_clock(clock, flushed=True)
    assert len({clock._states[t].buffer.head for t in tracks}) == 1


# -- the coverage-guided harness ---------------------------------------------------


@pytest.mark.skipif(
    importlib.util.find_spec("atheris") is None, reason="atheris is not installed (pip install '.[test]')"
)
def test_atheris_harness_smoke_run(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(ROOT / "fuzz" / "corpus", corpus)
    done = subprocess.run(
        [sys.executable, str(ROOT / "fuzz" / "fuzz_session.py"), "-max_total_time=2", "-rss_limit_mb=1024", str(corpus)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr[-3000:]
    runs = re.search(r"Done (\d+) runs", done.stderr)
    assert runs is not None and int(runs.group(1)) > 100, done.stderr[-2000:]
