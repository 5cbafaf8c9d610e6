"""
``receiver webhooks``: the webhook listener and call-record API alone (no stream port).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any

from receiver.cli._options import CONFIG_HELP, add_runtime, settings_from_args
from receiver.config import Settings
from receiver.logging import configure
from receiver.loop import loop_factory


def add_parser(commands: Any) -> None:
    hooks = commands.add_parser("webhooks", help="run the webhook listener and call-record API alone")
    hooks.add_argument("--config", help=CONFIG_HELP)
    hooks.add_argument("--webhook-host", help="address to listen on")
    hooks.add_argument("--webhook-port", type=int, help="port to listen on (0: any free port)")
    hooks.add_argument("--database", help="call-record database: a SQLite file or postgresql:// URL")
    add_runtime(hooks)
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
