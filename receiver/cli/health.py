"""
``receiver health``: ask the local receiver's ``/healthz``, for container health checks.
"""

from __future__ import annotations

import argparse
import ssl
import sys
import urllib.error
import urllib.request
from typing import Any

from receiver.cli._options import CONFIG_HELP, describe, local_addresses

EXAMPLES = """\
examples:
  receiver health                          # the port from config.toml / RECEIVER_PORT
  receiver health --url http://10.0.0.5:8080/healthz
  HEALTHCHECK CMD ["receiver", "health"]   # in a Dockerfile
"""


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "health",
        help="check that the local receiver answers /healthz (exit 0 or 1)",
        description=describe(
            "Ask the receiver the settings describe (host and port from config.toml, RECEIVER_HOST and "
            "RECEIVER_PORT) for GET /healthz; exit 0 on 200, 1 otherwise with the reason. For container health "
            "checks and scripts: it follows the port however it was chosen."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", help=CONFIG_HELP)
    parser.add_argument("--url", help="ask this URL instead of the configured receiver's /healthz")
    parser.add_argument("--timeout", type=float, default=3.0, metavar="S", help="seconds to wait (default 3)")
    parser.set_defaults(run=health)


def health(args: argparse.Namespace) -> int:
    from receiver.config import Settings

    url = args.url
    context = None
    if url is None:
        settings = Settings.load(args.config)
        scheme = "https" if settings.tls_certfile else "http"
        url = f"{scheme}://{local_addresses(settings)['{receiver}']}/healthz"
        if settings.tls_certfile:
            # Our own certificate, asked over loopback: its name need not match 127.0.0.1.
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, timeout=args.timeout, context=context) as response:  # noqa: S310 - our URL
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (OSError, ValueError) as exc:
        print(f"receiver: {url} unreachable: {exc}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"receiver: {url} answered HTTP {status}", file=sys.stderr)
        return 1
    print(f"ok: {url}")
    return 0
