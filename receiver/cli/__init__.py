"""
The ``receiver`` command: one module per subcommand, each with ``add_parser``
(which sets the function to run) and the function itself.

Command modules import what they run inside that function, so building the
parser stays cheap and ``receiver simulate`` never loads the server.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from receiver import __version__, speedups
from receiver.cli import (
    calls,
    check_actions,
    db,
    health,
    plot,
    repair,
    serve,
    simulate,
    transcribe,
    transcript,
    webhooks,
    worker,
)
from receiver.errors import ConfigError, ListenError
from receiver.logging import SERVER, get_logger

# In the order ``receiver --help`` lists them.
COMMANDS = (serve, worker, repair, check_actions, simulate, webhooks, calls, transcript, transcribe, plot, db, health)


DESCRIPTION = """\
WebSocket media-stream receiver: takes a call's audio streams from MiniVoice,
Twilio Media Streams, SignalWire, Telnyx, Plivo, Vonage, Exotel, jambonz,
FreeSWITCH (mod_audio_fork / mod_audio_stream), Asterisk (chan_websocket) and
Genesys AudioHook (the format is detected from the connection), records them
as aligned WAV files, feeds transcription plugins, and keeps a record of every
call from the platform's webhooks."""

EPILOG = """\
examples:
  receiver serve                                  # streams on :8080, webhooks and call API on :8081
  receiver simulate --allow-insecure examples/flow.json
  receiver calls                                  # the calls recorded so far
  receiver transcript CALL_ID
  receiver transcribe CALL_ID --plugin whisper    # a call's recordings through another engine
  receiver COMMAND --help                         # each command's options and examples

settings: config.toml (./config.toml, or --config / $RECEIVER_CONFIG), overridden by
RECEIVER_<KEY> environment variables (RECEIVER_PORT=9000), overridden by flags."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="receiver",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version", action="version", version=f"receiver {__version__} ({speedups.build()} media path)"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", title="commands")
    for command in COMMANDS:
        command.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except ConfigError as exc:
        print(f"receiver: configuration error: {exc}", file=sys.stderr)
        return 2
    except ListenError as exc:
        get_logger(SERVER).error("listen_failed", error=str(exc))
        return 1
    except KeyboardInterrupt:
        return 130
