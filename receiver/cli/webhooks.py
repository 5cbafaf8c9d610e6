"""
``receiver webhooks``: the webhook listener and call-record API alone (no stream port).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any

from receiver.cli._options import CONFIG_HELP, add_runtime, describe, settings_from_args
from receiver.config import Settings
from receiver.logging import configure
from receiver.loop import loop_factory

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
    settings = settings_from_args(args)
    configure(fmt=settings.log_format, level=settings.log_level)
    with asyncio.Runner(loop_factory=loop_factory(args.loop)) as runner:
        runner.run(_serve_webhooks(settings))
    return 0


async def _serve_webhooks(settings: Settings) -> None:
    from receiver.calls.listener import WebhookService

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with WebhookService(settings):
        await stop.wait()
