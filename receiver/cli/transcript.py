"""
``receiver transcript``: a call's transcript as a dialogue.
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
    parser.add_argument("--config", help=CONFIG_HELP)
    parser.add_argument("--partial", action="store_true", help="show partial results too")
    parser.set_defaults(run=transcript)


def transcript(args: argparse.Namespace) -> int:
    from receiver.transcription.transcript import format_dialogue, read_transcript, transcript_path

    directory = args.recordings_dir or Settings.load(args.config).recordings_dir
    path = transcript_path(directory, args.call_id)
    if not path.is_file():
        print(f"receiver: no transcript for call {args.call_id!r} ({path})", file=sys.stderr)
        return 1
    print(format_dialogue(read_transcript(path), partial=args.partial))
    return 0
