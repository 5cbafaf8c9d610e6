"""``receiver plot``: a call's waveforms as an image, from its record and recordings."""

from __future__ import annotations

import struct
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import orjson
import pytest

from receiver.calls.db import StreamEnd, StreamStart, apply_stream_end, apply_stream_start, connect
from receiver.cli import main
from receiver.sinks.wav import wav_header

matplotlib = pytest.importorskip("matplotlib")


def write_wav(path: Path, samples: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = samples.astype("<i2").tobytes()
    path.write_bytes(wav_header(channels=1, sample_rate=8000, data_bytes=len(data)) + data)


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


@pytest.fixture
def call(tmp_path: Path) -> tuple[Path, Path]:
    """Two seconds of a call: a tone from the caller with a hole, the agent quiet; a transcript; its record."""
    recordings, database = tmp_path / "recordings", tmp_path / "calls.db"
    t = np.arange(16000) / 8000
    tone = (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    tone[4000:4800] = 0
    write_wav(recordings / "call_p" / "str_p.inbound.wav", tone)
    write_wav(recordings / "call_p" / "str_p.outbound.wav", np.zeros(16000, np.int16))
    lines = [
        {"call_id": "call_p", "stream_id": "str_p", "track": "inbound", "start": 0.1, "end": 0.4, "text": "hello"},
        {"call_id": "call_p", "stream_id": "str_p", "track": "inbound", "start": 1.0, "end": 1.3, "text": "cancel",
         "kind": "keyword"},
    ]  # fmt: skip
    (recordings / "call_p" / "transcript.jsonl").write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in lines))
    conn = connect(database)
    now = datetime(2026, 5, 29, 12, tzinfo=UTC)
    apply_stream_start(
        conn, StreamStart("call_p", "str_p", now, "minivoice", "both", ("inbound", "outbound"), "audio/x-mulaw", 8000)
    )
    apply_stream_end(
        conn, StreamEnd("call_p", "str_p", now, "call_ended", 1000, {"gap_spans": {"inbound": [[4000, 4800]]}})
    )
    conn.close()
    return recordings, database


def test_plot_draws_every_track_of_every_stream_to_a_png(call: tuple[Path, Path], tmp_path: Path, capsys) -> None:
    recordings, database = call
    out = tmp_path / "call.png"

    code = main(["plot", "call_p", "-o", str(out), "--recordings-dir", str(recordings), "--database", str(database)])

    assert code == 0
    assert capsys.readouterr().out.strip() == str(out)
    width, height = png_size(out)
    assert width == 1320 and height > 400  # 12 in at 110 dpi; two rows


def test_plot_without_a_record_draws_the_files_of_the_call(call: tuple[Path, Path], tmp_path: Path) -> None:
    recordings, _ = call
    out = tmp_path / "call.png"

    assert (
        main(
            [
                "plot",
                "call_p",
                "-o",
                str(out),
                "--recordings-dir",
                str(recordings),
                "--database",
                str(tmp_path / "none.db"),
            ]
        )
        == 0
    )
    assert png_size(out)[0] == 1320


def test_plot_of_an_unknown_call_says_so(tmp_path: Path, capsys) -> None:
    code = main(["plot", "nope", "--recordings-dir", str(tmp_path), "--database", str(tmp_path / "none.db")])

    assert code == 1
    assert "no call nope" in capsys.readouterr().err
