"""
``receiver webhooks``: the webhook listener and call-record API alone (no stream port).
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from receiver.cli._options import CONFIG_HELP, add_runtime, describe, run_until_signalled
from receiver.config import Settings

EXAMPLES = """\
examples:
  receiver webhooks                                # POST /webhooks, GET /calls on 127.0.0.1:8081
  receiver webhooks --webhook-host 0.0.0.0 --webhook-port 9001 --database /data/calls/receiver.db
"""


def add_parser(commands: Any) -> None:
    hooks = commands.add_parser(
        "webhooks",
        help="run the webhook listener and call-record API alone",
        description=describe(
            "Run only the webhook listener (POST /webhooks, /answer when enabled) and the call-record "
            "API (GET /calls, /calls/ID, /calls/ID/events), without a stream port: for a receiver whose "
            "streams are served elsewhere, writing to the same database."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    hooks.add_argument("--config", help=CONFIG_HELP)
    hooks.add_argument("--webhook-host", help="address to listen on (default 127.0.0.1)")
    hooks.add_argument("--webhook-port", type=int, help="port to listen on (default 8081; 0: any free port)")
    hooks.add_argument(
        "--database", help="call-record database: a SQLite file or postgresql:// URL (default receiver.db)"
    )
    add_runtime(hooks)
    hooks.add_argument(
        "--insecure-webhooks",
        action="store_true",
        default=None,
        help="serve the webhook port beyond loopback without credentials (anyone could forge webhooks)",
    )
    hooks.set_defaults(run=run_webhooks)


def run_webhooks(args: argparse.Namespace) -> int:
    return run_until_signalled(args, _serve_webhooks)


async def _serve_webhooks(settings: Settings, stop: asyncio.Event) -> None:
    from receiver.calls.listener import WebhookService

    async with WebhookService(settings):
        await stop.wait()
