"""
``receiver check-actions``: validate an answer_url actions payload.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from receiver.cli._options import (
    CONFIG_HELP,
    PLACEHOLDER_HELP,
    describe,
    expand_placeholders,
    has_placeholders,
    insecure_hint,
)

EXAMPLES = """\
examples:
  receiver check-actions --allow-insecure examples/flow.json
  curl -s -X POST https://app.example.com/answer | receiver check-actions -
"""


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "check-actions",
        help="validate an answer_url actions payload",
        description=describe(
            "Check an answer_url actions payload as the platform does: print OK and the actions, "
            "or the precise reason it would be rejected (exit 1)."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", help=f"JSON file with the payload ('-' reads stdin); {PLACEHOLDER_HELP}")
    parser.add_argument("--allow-insecure", action="store_true", help="accept ws:// stream URLs (local testing)")
    parser.add_argument("--config", help=CONFIG_HELP + "; read for {receiver} and {webhooks}")
    parser.set_defaults(run=check_actions)


def check_actions(args: argparse.Namespace) -> int:
    """Print OK and the actions, or what is wrong; exit 0 or 1."""
    from receiver.calls.actions import InvalidActions, parse_actions
    from receiver.config import Settings

    try:
        data = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    except OSError as exc:
        print(f"receiver: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 1
    payload: str | bytes = data
    if has_placeholders(data.decode("utf-8", errors="replace")):
        payload = expand_placeholders(data.decode("utf-8", errors="replace"), Settings.load(args.config))
    try:
        actions = parse_actions(payload, allow_insecure=args.allow_insecure)
    except InvalidActions as exc:
        print(f"invalid action payload: {insecure_hint(exc.reason, args.allow_insecure)}")
        return 1
    print(f"OK: {len(actions)} action(s)" + (": " + ", ".join(a.type for a in actions) if actions else ""))
    return 0
