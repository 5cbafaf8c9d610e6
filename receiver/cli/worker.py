"""
``receiver worker``: run the ``[[sinks]]`` plugins of its config on streams taken from the bus.
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
  receiver worker --bus redis://127.0.0.1:6379/0 --config worker.toml
  receiver worker --bus redis://redis:6379/0 --name worker-2 --streams 32 --database postgresql://db/receiver
"""


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "worker",
        help="run transcription plugins on streams from the bus (a consumer-group member)",
        description=describe(
            "Take streams a receiver published to the bus (serve --bus) and run the [[sinks]] plugins of this "
            "worker's config on them; workers of one group share the streams and take over a silent one's."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", help=CONFIG_HELP + "; its [[sinks]] are what the worker runs")
    parser.add_argument("--bus", dest="bus_url", help="the bus: redis://host:port/db (default: [bus] url)")
    parser.add_argument("--database", help="call store for transcripts: a SQLite file or postgresql:// URL")
    parser.add_argument("--name", dest="worker_name", help="consumer name in the group (default: host-pid)")
    parser.add_argument("--streams", dest="worker_streams", type=int, help="streams at once (default 16)")
    parser.add_argument("--recordings-dir", help="where transcript.jsonl files go (as `serve`)")
    add_runtime(parser)
    parser.set_defaults(run=worker)


def worker(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    configure(fmt=settings.log_format, level=settings.log_level)
    with asyncio.Runner(loop_factory=loop_factory(args.loop)) as runner:
        runner.run(_run(settings))
    return 0


async def _run(settings: Settings) -> None:
    from receiver.bus.worker import run_worker

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await run_worker(settings, stop)
