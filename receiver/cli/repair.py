"""
``receiver repair``: finish WAV files a crash left open.
"""

from __future__ import annotations

import argparse
from typing import Any

from receiver.cli._options import CONFIG_HELP, describe
from receiver.config import Settings

EXAMPLES = """\
examples:
  receiver repair                      # the recordings directory from the settings
  receiver repair /data/recordings
"""


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "repair",
        help="repair WAV files a crash left unfinished",
        description=describe(
            "Rewrite the headers of WAV files a killed receiver left unfinished, so they cover every "
            "whole sample on disk (serve does this at start-up unless repair_on_start = false)."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("directory", nargs="?", help="recordings directory (default: from settings)")
    parser.add_argument("--config", help=CONFIG_HELP)
    parser.set_defaults(run=repair)


def repair(args: argparse.Namespace) -> int:
    from receiver.sinks.wav import repair_directory

    directory = args.directory or Settings.load(args.config).recordings_dir
    repaired = repair_directory(directory)
    for path in repaired:
        print(f"repaired {path}")
    print(f"{len(repaired)} file(s) repaired under {directory}")
    return 0
