"""
``receiver check-actions``: validate an answer_url actions payload.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("check-actions", help="validate an answer_url actions payload")
    parser.add_argument("file", help="JSON file with the payload ('-' reads stdin)")
    parser.add_argument("--allow-insecure", action="store_true", help="accept ws:// stream URLs (local testing)")
    parser.set_defaults(run=check_actions)


def check_actions(args: argparse.Namespace) -> int:
    """Print OK and the actions, or what is wrong; exit 0 or 1."""
    from receiver.calls.actions import InvalidActions, parse_actions

    try:
        data = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    except OSError as exc:
        print(f"receiver: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 1
    try:
        actions = parse_actions(data, allow_insecure=args.allow_insecure)
    except InvalidActions as exc:
        print(f"invalid action payload: {exc.reason}")
        return 1
    print(f"OK: {len(actions)} action(s)" + (": " + ", ".join(a.type for a in actions) if actions else ""))
    return 0
