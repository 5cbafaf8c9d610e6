"""
``receiver transcript``: a call's transcript as a dialogue.

From the call's ``transcript.jsonl`` next to its recordings when that file is
here, else from the call store (where every receiver and worker of a
deployment stores its events); ``--database`` reads the store.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from receiver.cli._options import CONFIG_HELP
from receiver.config import Settings


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("transcript", help="print a call's transcript as a dialogue")
    parser.add_argument("call_id")
    parser.add_argument("--recordings-dir", help="where recordings and transcripts are (default: from settings)")
    parser.add_argument("--database", help="read the call store (a SQLite file or postgresql:// URL) instead")
    parser.add_argument("--config", help=CONFIG_HELP)
    parser.add_argument("--partial", action="store_true", help="show partial results too")
    parser.set_defaults(run=transcript)


def transcript(args: argparse.Namespace) -> int:
    from receiver.transcription.transcript import format_dialogue, read_transcript, transcript_path

    settings = Settings.load(args.config)
    if args.database is None:
        path = transcript_path(args.recordings_dir or settings.recordings_dir, args.call_id)
        if path.is_file():
            print(format_dialogue(read_transcript(path), partial=args.partial))
            return 0
    database = args.database or settings.database
    events = _from_store(database, args.call_id)
    if events is None:
        return 1
    if not events:
        print(f"receiver: no transcript for call {args.call_id!r}", file=sys.stderr)
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
