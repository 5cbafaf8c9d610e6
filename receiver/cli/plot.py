"""
``receiver plot CALL_ID [-o call.png]``: a call's streams as a picture, for bug reports and docs.

Per stream, both tracks on the media clock (caller above, agent below), the
holes filled with silence and the audio the WAV sink lost shaded, keyword
hits and the start of each transcript line marked. Reads the call record
(for the streams, their files and gaps) and the recordings; a call with no
record is drawn from the files in its recordings folder. Needs matplotlib
(``pip install 'receiver[plot]'``).
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from pathlib import Path
from typing import Any

from receiver.cli._options import CONFIG_HELP, describe
from receiver.config import Settings

POINTS = 2000
COLORS = {"inbound": "#2f6fb3", "outbound": "#c0622d"}


EXAMPLES = """\
examples:
  receiver plot call_1f2e3d4c5b6a                 # call_1f2e3d4c5b6a.png
  receiver plot call_1f2e3d4c5b6a -o call.svg
"""


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "plot",
        help="draw a call's waveforms, gaps and transcript marks as a PNG",
        description=describe(
            "Draw each stream of a call on its media clock: both tracks, the audio gaps filled with silence "
            "and the audio a sink lost shaded, keyword hits and transcript lines marked (needs matplotlib: "
            "pip install 'receiver[plot]')."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("call_id", help="the call's id (as in `receiver calls`)")
    parser.add_argument("-o", "--output", help="the image file (default: CALL_ID.png; .svg and .pdf work too)")
    parser.add_argument("--config", help=CONFIG_HELP)
    parser.add_argument("--database", help="call-record database (default: from settings)")
    parser.add_argument("--recordings-dir", help="where recordings and transcripts are (default: from settings)")
    parser.set_defaults(run=plot)


def plot(args: argparse.Namespace) -> int:
    try:
        import matplotlib
    except ImportError:
        print("receiver plot needs matplotlib: pip install 'receiver[plot]'", file=sys.stderr)
        return 2
    matplotlib.use("Agg")
    from receiver.calls.media import RecordingError, call_transcript, stream_media
    from receiver.sinks.wav import safe_name

    settings = Settings.load(args.config)
    recordings = args.recordings_dir or settings.recordings_dir
    record, transcript = _record(args.database or settings.database, args.call_id, recordings)
    if record is None:
        print(f"receiver: no call {args.call_id} (no record, no recordings in {recordings})", file=sys.stderr)
        return 1
    transcript = transcript or call_transcript(recordings, args.call_id)
    streams = []
    for stream in record["streams"]:
        media = stream_media(record, stream["stream_id"], recordings)
        if media is not None and media.files:
            streams.append(media)
    if not streams:
        print(f"receiver: call {args.call_id} has no recording in {recordings}", file=sys.stderr)
        return 1
    output = Path(args.output or safe_name(args.call_id) + ".png")
    try:
        _draw(args.call_id, streams, transcript, output)
    except RecordingError as exc:
        print(f"receiver: {exc}", file=sys.stderr)
        return 1
    print(output)
    return 0


def _record(database: str, call_id: str, recordings: str) -> tuple[dict[str, Any] | None, list[Any]]:
    """The call record and its stored transcript; else a record made up from the WAV files in
    the call's recordings folder."""
    from receiver.calls.db import connect, read_call, read_transcripts
    from receiver.sinks.wav import safe_name

    if Path(database).is_file():
        try:
            conn = connect(database, read_only=True)
        except sqlite3.Error:
            conn = None
        if conn is not None:
            try:
                record = read_call(conn, call_id)
                transcript = [e for e in read_transcripts(conn, call_id) if e.final] if record else []
            finally:
                conn.close()
            if record is not None:
                return record, transcript
    folder = Path(recordings) / safe_name(call_id)
    ids = sorted({p.name.split(".")[0] for p in folder.glob("*.wav")}) if folder.is_dir() else []
    if not ids:
        return None, []
    return {"call_id": call_id, "streams": [{"stream_id": i, "files": [], "outcome": None} for i in ids]}, []


def _draw(call_id: str, streams: list[Any], transcript: list[Any], output: Path) -> None:
    import matplotlib.pyplot as plt
    import numpy as np

    from receiver.calls.media import waveform

    shapes = [waveform(media, POINTS, transcript) for media in streams]
    rows = sum(len(shape["tracks"]) for shape in shapes)
    fig, axes = plt.subplots(rows, 1, figsize=(12, 1.8 * rows + 0.8), squeeze=False)
    fig.suptitle(f"call {call_id}", fontsize=11, x=0.01, ha="left")
    row = 0
    for media, shape in zip(streams, shapes, strict=True):
        duration = shape["duration_seconds"]
        for track, envelope in shape["tracks"].items():
            ax = axes[row][0]
            row += 1
            n = len(envelope["min"])
            x = (np.arange(n) + 0.5) * duration / max(n, 1)
            low, high = np.array(envelope["min"]) / 32768, np.array(envelope["max"]) / 32768
            ax.fill_between(x, low, high, color=COLORS.get(track, "#444"), linewidth=0, step="mid")
            for start, end in shape["gaps"].get(track, ()):
                ax.axvspan(start, end, color="#d62728", alpha=0.3, linewidth=0)
            for start, end in shape["lost"]:
                ax.axvspan(start, end, color="#e69614", alpha=0.35, linewidth=0)
            for line in (e for e in transcript if e.stream_id == media.stream_id and e.track == track):
                if line.kind == "keyword":
                    ax.axvspan(line.start, line.end, color="#7b2fb3", alpha=0.15, linewidth=0)
                    ax.text(line.start, -0.95, line.text, color="#7b2fb3", fontsize=7, va="bottom")
                elif line.kind == "transcript" and line.final:
                    ax.axvline(line.start, color="#555", linewidth=0.6, linestyle=":")
                    ax.text(line.start, 0.95, line.text[:60], fontsize=7, va="top", clip_on=True)
            ax.set_xlim(0, duration or 1)
            ax.set_ylim(-1, 1)
            ax.set_yticks([])
            speaker = {"inbound": "caller", "outbound": "agent"}.get(track, track)
            ax.set_ylabel(speaker, fontsize=8)
            ax.set_title(
                f"{media.stream_id} · {track} · {duration:.2f} s at {shape['sample_rate']} Hz",
                fontsize=8,
                loc="left",
            )
            ax.tick_params(labelsize=7)
    axes[-1][0].set_xlabel("seconds on the stream's media clock (red: audio missing, filled with silence)", fontsize=8)
    fig.tight_layout()
    fig.savefig(output, dpi=110)
    plt.close(fig)
