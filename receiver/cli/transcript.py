"""
``receiver transcript``: a call's transcript as a dialogue, JSON lines, or captions (SRT, WebVTT).

From the call's ``transcript.jsonl`` next to its recordings when that file is
here, else from the call store (where every receiver and worker of a
deployment stores its events); ``--database`` reads the store.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from receiver.cli._options import CONFIG_HELP, describe, where_from
from receiver.config import Settings

EXAMPLES = """\
examples:
  receiver transcript call_1f2e3d4c5b6a
  receiver transcript call_1f2e3d4c5b6a --partial --recordings-dir /data/recordings
  receiver transcript call_1f2e3d4c5b6a --format srt --engine whisper > call.srt
"""


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "transcript",
        help="print a call's transcript as a dialogue, JSON lines or captions",
        description=describe(
            "Print what the transcription plugins heard on a call, caller and agent interleaved in "
            "media-clock order (from {recordings_dir}/{call_id}/transcript.jsonl). Says so while the call's "
            "audio is still being decoded."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("call_id", help="the call's id (as in `receiver calls` and the recordings directory)")
    parser.add_argument("--recordings-dir", help="where recordings and transcripts are (default: from settings)")
    parser.add_argument("--database", help="read the call store (a SQLite file or postgresql:// URL) instead")
    parser.add_argument("--config", help=CONFIG_HELP)
    parser.add_argument("--partial", action="store_true", help="show partial results too (text, jsonl)")
    parser.add_argument(
        "--format",
        choices=["text", "jsonl", "srt", "vtt"],
        default="text",
        help="text: the dialogue (default); jsonl: the events; srt, vtt: captions for a player",
    )
    parser.add_argument("--engine", help="only this engine's events (the sink's name in config.toml)")
    parser.set_defaults(run=transcript)


def transcript(args: argparse.Namespace) -> int:
    from receiver.transcription.formats import engines, formatter
    from receiver.transcription.transcript import read_transcript, still_decoding, transcript_path

    settings = Settings.load(args.config)
    if args.recordings_dir:
        directory, source = args.recordings_dir, where_from(settings, "recordings_dir", args.recordings_dir)
    else:
        directory, source = settings.recordings_dir, where_from(settings, "recordings_dir")
    path = transcript_path(directory, args.call_id)
    decoding = still_decoding(path) if path.parent.is_dir() else []
    from_file = args.database is None and (path.is_file() or bool(decoding))
    if from_file:
        events = read_transcript(path) if path.is_file() else []
    else:
        database = args.database or settings.database
        stored = _from_store(database, args.call_id)
        if stored is None:
            return 1
        if not stored:
            print(
                f"receiver: no transcript for call {args.call_id!r}: not at {Path(path).resolve()} ({source}), "
                f"nor in the call store ({'PostgreSQL' if '://' in database else Path(database).resolve()})",
                file=sys.stderr,
            )
            return 1
        events = stored
    if args.engine:
        events = [e for e in events if e.engine == args.engine]
    elif args.format in ("srt", "vtt") and len(engines(events)) > 1:
        # Captions from two engines would show every line twice.
        print(
            f"receiver: call {args.call_id!r} has transcripts from {', '.join(engines(events))}: choose one with --engine",
            file=sys.stderr,
        )
        return 2
    text = formatter(args.format, partial=args.partial)(events)
    if text:
        print(text, end="" if text.endswith("\n") else "\n")
    notes = sys.stdout if args.format == "text" else sys.stderr  # the other formats stay machine-readable
    if not from_file:
        return 0
    if decoding and not text:
        print(f"receiver: call {args.call_id!r} is still being decoded; nothing transcribed yet ({path})", file=notes)
    elif decoding:
        print(f"(still being decoded: stream {', '.join(decoding)}; run again for the rest)", file=notes)
    elif not text:
        print("(transcript complete: nothing was said)", file=notes)
    return 0


def _from_store(database: str, call_id: str) -> list[Any] | None:
    from pathlib import Path

    from receiver.calls.db import read_transcripts
    from receiver.calls.store import connect_database, is_postgres
    from receiver.calls.webhooks import StoreUnavailable

    if not is_postgres(database) and not Path(database).is_file():
        return []
    try:
        conn = connect_database(database, read_only=True)
    except StoreUnavailable as exc:
        print(f"receiver: {exc.message}", file=sys.stderr)
        return None
    try:
        return read_transcripts(conn, call_id)
    except Exception as exc:  # an older database without the transcripts table, whichever engine
        print(f"receiver: cannot read transcripts from the call store: {str(exc).strip()}", file=sys.stderr)
        return None
    finally:
        conn.close()
