"""
``receiver serve``: the stream receiver and, beside it, the webhook listener.
"""

from __future__ import annotations

import argparse
from typing import Any

from receiver.cli._options import CONFIG_HELP, add_runtime, describe, settings_from_args
from receiver.logging import configure

EXAMPLES = """\
examples:
  receiver serve                                   # 127.0.0.1:8080 streams, :8081 webhooks
  RECEIVER_PORT=9000 RECEIVER_WEBHOOK_PORT=9001 receiver serve
  receiver serve --config /etc/receiver/config.toml --host 0.0.0.0 --workers 2
  receiver serve --no-webhooks --recordings-dir /data/recordings

SIGTERM drains (live streams may finish, up to drain_timeout); SIGINT or a second
SIGTERM closes every stream at once. Every file is finalised either way.
"""


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "serve",
        help="run the receiver (streams, webhooks and the call-record API)",
        description=describe(
            "Run the stream receiver and, beside it, the webhook listener and call-record API. "
            "Validates every setting (plugins and their options included) before opening a port, then logs "
            "one receiver_ready line with the URLs, paths, sinks, auth modes and changed limits."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", help=CONFIG_HELP)
    parser.add_argument("--host", help="address to listen on for streams (default 127.0.0.1; 0.0.0.0: all)")
    parser.add_argument(
        "--port", type=int, help="port for streams and /healthz, /readyz (default 8080; 0: any free port)"
    )
    parser.add_argument("--recordings-dir", help="where WAV recordings and transcripts go (default recordings)")
    parser.add_argument("--workers", type=int, help="processes sharing the port (SO_REUSEPORT; needs a fixed --port)")
    add_runtime(parser)
    parser.add_argument("--webhook-host", help="address the webhook listener listens on (default 127.0.0.1)")
    parser.add_argument(
        "--webhook-port", type=int, help="port for webhooks and the call-record API (default 8081; 0: any free port)"
    )
    parser.add_argument(
        "--no-webhooks", dest="webhooks", action="store_false", default=None, help="do not run the webhook listener"
    )
    parser.add_argument(
        "--database", help="call-record database: a SQLite file or postgresql:// URL (default receiver.db)"
    )
    parser.add_argument("--bus", dest="bus_url", help="publish every stream to this bus: redis://host:port/db")
    parser.add_argument(
        "--insecure-webhooks",
        action="store_true",
        default=None,
        help="serve the webhook port beyond loopback without credentials (anyone could forge webhooks)",
    )
    parser.set_defaults(run=serve)


def serve(args: argparse.Namespace) -> int:
    from receiver import app

    settings = settings_from_args(args)
    configure(fmt=settings.log_format, level=settings.log_level)
    if settings.workers == 1:
        app.run(settings, args.loop)
        return 0
    return app.run_workers(settings, args.loop)
