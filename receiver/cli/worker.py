"""
``receiver worker``: run the ``[[sinks]]`` plugins of its config on streams taken from the bus.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from receiver.cli._options import CONFIG_HELP, add_runtime, describe, run_until_signalled
from receiver.config import Settings

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
    return run_until_signalled(args, _run)


async def _run(settings: Settings, stop: asyncio.Event) -> None:
    from receiver.bus.worker import run_worker

    await run_worker(settings, stop)
