"""
``receiver transcript``: a call's transcript as a dialogue.

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
"""


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "transcript",
        help="print a call's transcript as a dialogue",
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
    parser.add_argument("--partial", action="store_true", help="show partial results too")
    parser.set_defaults(run=transcript)


def transcript(args: argparse.Namespace) -> int:
    from receiver.transcription.transcript import format_dialogue, read_transcript, still_decoding, transcript_path

    settings = Settings.load(args.config)
    if args.recordings_dir:
        directory, source = args.recordings_dir, where_from(settings, "recordings_dir", args.recordings_dir)
    else:
        directory, source = settings.recordings_dir, where_from(settings, "recordings_dir")
    path = transcript_path(directory, args.call_id)
    decoding = still_decoding(path) if path.parent.is_dir() else []
    if args.database is None and (path.is_file() or decoding):
        text = format_dialogue(read_transcript(path), partial=args.partial) if path.is_file() else ""
        if text:
            print(text)
        if decoding and not text:
            print(f"receiver: call {args.call_id!r} is still being decoded; nothing transcribed yet ({path})")
        elif decoding:
            print(f"(still being decoded: stream {', '.join(decoding)}; run again for the rest)")
        elif not text:
            print("(transcript complete: nothing was said)")
        return 0
    database = args.database or settings.database
    events = _from_store(database, args.call_id)
    if events is None:
        return 1
    if not events:
        print(
            f"receiver: no transcript for call {args.call_id!r}: not at {Path(path).resolve()} ({source}), "
            f"nor in the call store ({'PostgreSQL' if '://' in database else Path(database).resolve()})",
            file=sys.stderr,
        )
        return 1
    print(format_dialogue(events, partial=args.partial))
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
