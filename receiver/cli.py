"""
The ``receiver`` command: argument parsing, settings, and the event loop.

Library code never imports uvloop: the loop is chosen here (uvloop when
installed, asyncio otherwise), as uvicorn's ``loops/auto.py`` does.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .config import Settings
from .errors import ConfigError, ListenError
from .logging import SERVER, configure, get_logger


def loop_factory(name: str = "auto") -> Callable[[], asyncio.AbstractEventLoop]:
    """The event loop to run on: ``uvloop``, ``asyncio``, or ``auto`` (uvloop if installed)."""
    if name in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if name == "uvloop":
                raise
        else:
            return uvloop.new_event_loop
    return asyncio.new_event_loop


def _serve_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="path to config.toml (default: $RECEIVER_CONFIG or ./config.toml)")
    parser.add_argument("--host", help="address to listen on")
    parser.add_argument("--port", type=int, help="port for streams and /healthz, /readyz (0: any free port)")
    parser.add_argument("--recordings-dir", help="where WAV recordings go")
    parser.add_argument("--workers", type=int, help="processes sharing the port (SO_REUSEPORT)")
    parser.add_argument("--log-format", choices=["auto", "json", "console"])
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--loop", choices=["auto", "uvloop", "asyncio"], default="auto")
    parser.add_argument("--webhook-port", type=int, help="port for webhooks and the call-record API (0: any free port)")
    parser.add_argument("--no-webhooks", dest="webhooks", action="store_false", default=None, help="do not run the webhook listener")
    parser.add_argument("--database", help="call-record database (SQLite)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="receiver", description="WebSocket media-stream receiver for MiniVoice and Twilio-format streams.")
    parser.add_argument("--version", action="version", version=f"receiver {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the receiver")
    _serve_args(serve)
    repair = commands.add_parser("repair", help="repair WAV files a crash left unfinished")
    repair.add_argument("directory", nargs="?", help="recordings directory (default: from settings)")
    repair.add_argument("--config")
    check = commands.add_parser("check-actions", help="validate an answer_url actions payload")
    check.add_argument("file", help="JSON file with the payload ('-' reads stdin)")
    check.add_argument("--allow-insecure", action="store_true", help="accept ws:// stream URLs (local testing)")
    from .simulator.cli import add_parser as add_simulate

    add_simulate(commands)
    from .callcli import add_commands

    add_commands(commands)
    transcript = commands.add_parser("transcript", help="print a call's transcript as a dialogue")
    transcript.add_argument("call_id")
    transcript.add_argument("--recordings-dir", help="where recordings and transcripts are (default: from settings)")
    transcript.add_argument("--config")
    transcript.add_argument("--partial", action="store_true", help="show partial results too")
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
    overrides = {
        key: getattr(args, key, None)
        for key in ("host", "port", "recordings_dir", "workers", "log_format", "log_level", "webhook_host", "webhook_port", "webhooks", "database")
    }
    return Settings.load(args.config, overrides=overrides)


async def run_server(settings: Settings) -> None:
    """Serve until a signal, then shut down cleanly (streams closed, files finalised).

    SIGTERM drains: readiness turns 503 and new streams are refused at once,
    live streams run until they end or ``drain_timeout`` passes, then the rest
    are closed with 1012. SIGINT, or a second SIGTERM, cuts the drain short:
    the streams are closed with 1012 at once, and every sink is still finalised.
    """
    from .server import ReceiverServer
    from .webhook_server import WebhookService

    stop = asyncio.Event()
    hurry = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        get_logger(SERVER).info("signal_received", signal=signal.Signals(signum).name, draining=stop.is_set())
        if stop.is_set() or signum == signal.SIGINT:
            hurry.set()
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):  # before starting: a signal during start-up stops cleanly too
        loop.add_signal_handler(sig, on_signal, sig)
    hooks = WebhookService(settings) if settings.webhooks else None
    if hooks is not None:
        await hooks.start()  # first, so every stream's start reaches the store
    try:
        server = ReceiverServer(settings, observers=hooks.observers if hooks is not None else ())
        await server.start()
        try:
            await stop.wait()
            await server.drain(settings.drain_timeout, hurry=hurry)
        finally:
            await server.stop()
    finally:
        if hooks is not None:
            await hooks.stop()  # last, so the final streams' ends are written


def _run(settings: Settings, loop_name: str) -> None:
    with asyncio.Runner(loop_factory=loop_factory(loop_name)) as runner:
        runner.run(run_server(settings))


def serve(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    configure(fmt=settings.log_format, level=settings.log_level)
    if settings.workers == 1:
        _run(settings, args.loop)
        return 0
    return _serve_workers(settings, args.loop)


def _serve_workers(settings: Settings, loop_name: str) -> int:
    """Run ``settings.workers`` processes on one port (SO_REUSEPORT)."""
    import multiprocessing

    log = get_logger(SERVER)
    if settings.port == 0:
        raise ConfigError("--workers needs a fixed --port")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_worker_main, args=(settings, loop_name), name=f"worker-{i}") for i in range(settings.workers)]
    for proc in procs:
        proc.start()
    log.info("workers_started", workers=len(procs), pids=[p.pid for p in procs])

    def forward(signum: int, _frame: Any) -> None:
        for proc in procs:
            if proc.pid is not None and proc.is_alive():
                os.kill(proc.pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for proc in procs:
        proc.join()
    return max((p.exitcode or 0) for p in procs)


def _worker_main(settings: Settings, loop_name: str) -> None:
    configure(fmt=settings.log_format, level=settings.log_level)
    try:
        _run(settings, loop_name)
    except ListenError as exc:
        get_logger(SERVER).error("listen_failed", error=str(exc))
        sys.exit(1)


def repair(args: argparse.Namespace) -> int:
    from .sinks.wav import repair_directory

    directory = args.directory or Settings.load(args.config).recordings_dir
    repaired = repair_directory(directory)
    for path in repaired:
        print(f"repaired {path}")
    print(f"{len(repaired)} file(s) repaired under {directory}")
    return 0


def check_actions(args: argparse.Namespace) -> int:
    """Print OK and the actions, or what is wrong; exit 0 or 1."""
    from .actions import InvalidActions, parse_actions

    try:
        data = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    except OSError as exc:
        print(f"receiver: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 1
    try:
        actions = parse_actions(data, allow_insecure=args.allow_insecure)
    except InvalidActions as exc:
        print(f"invalid action payload: {exc.reason}")
        return 1
    print(f"OK: {len(actions)} action(s)" + (": " + ", ".join(a.type for a in actions) if actions else ""))
    return 0


def transcript(args: argparse.Namespace) -> int:
    from .transcription.transcript import format_dialogue, read_transcript, transcript_path

    directory = args.recordings_dir or Settings.load(args.config).recordings_dir
    path = transcript_path(directory, args.call_id)
    if not path.is_file():
        print(f"receiver: no transcript for call {args.call_id!r} ({path})", file=sys.stderr)
        return 1
    print(format_dialogue(read_transcript(path), partial=args.partial))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            return serve(args)
        if args.command == "repair":
            return repair(args)
        if args.command == "check-actions":
            return check_actions(args)
        if args.command == "simulate":
            from .simulator.cli import simulate

            return simulate(args)
        if args.command in ("webhooks", "calls"):
            return int(args.run(args))
        if args.command == "transcript":
            return transcript(args)
    except ConfigError as exc:
        print(f"receiver: configuration error: {exc}", file=sys.stderr)
        return 2
    except ListenError as exc:
        get_logger(SERVER).error("listen_failed", error=str(exc))
        return 1
    except KeyboardInterrupt:
        return 130
    return 2  # pragma: no cover - argparse requires a command
