"""
``receiver serve``: the stream receiver and, beside it, the webhook listener.
"""

from __future__ import annotations

import argparse
from typing import Any

from receiver.cli._options import CONFIG_HELP, add_runtime, settings_from_args
from receiver.logging import configure


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("serve", help="run the receiver")
    parser.add_argument("--config", help=CONFIG_HELP)
    parser.add_argument("--host", help="address to listen on")
    parser.add_argument("--port", type=int, help="port for streams and /healthz, /readyz (0: any free port)")
    parser.add_argument("--recordings-dir", help="where WAV recordings go")
    parser.add_argument("--workers", type=int, help="processes sharing the port (SO_REUSEPORT)")
    add_runtime(parser)
    parser.add_argument("--webhook-port", type=int, help="port for webhooks and the call-record API (0: any free port)")
    parser.add_argument(
        "--no-webhooks", dest="webhooks", action="store_false", default=None, help="do not run the webhook listener"
    )
    parser.add_argument("--database", help="call-record database: a SQLite file or postgresql:// URL")
    parser.add_argument("--bus", dest="bus_url", help="publish every stream to this bus: redis://host:port/db")
    parser.set_defaults(run=serve)


def serve(args: argparse.Namespace) -> int:
    from receiver import app

    settings = settings_from_args(args)
    configure(fmt=settings.log_format, level=settings.log_level)
    if settings.workers == 1:
        app.run(settings, args.loop)
        return 0
    return app.run_workers(settings, args.loop)
