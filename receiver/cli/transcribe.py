"""
``receiver transcribe CALL_ID``: run transcription plugins over a call's recordings, after the fact.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from typing import Any, TextIO

from receiver.cli._options import CONFIG_HELP, LOG_LEVELS
from receiver.config import Settings

EXAMPLES = """\
examples:
  receiver transcribe call_1f2e3d4c5b6a                    # every transcription sink in config.toml
  receiver transcribe call_1f2e3d4c5b6a --plugin whisper   # one plugin (its [[sinks]] options, or defaults)
  receiver transcript call_1f2e3d4c5b6a --engine whisper   # then read it
"""


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "transcribe",
        help="transcribe a call's recordings again, with any transcription plugin",
        description="Feed a call's recorded tracks ({recordings_dir}/{call_id}/*.wav) through transcription "
        "plugins as if the call streamed again, as fast as the engines decode. Their events replace the "
        "same engines' earlier events in the call's transcript.jsonl.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("call_id", help="the call's id (its folder in the recordings directory)")
    parser.add_argument(
        "--plugin",
        help="a sink's name in the settings, or else a plugin to run with its defaults "
        "(default: every sink in the settings but the WAV recorder)",
    )
    parser.add_argument("--config", help=CONFIG_HELP)
    parser.add_argument("--recordings-dir", help="where recordings and transcripts are (default: from settings)")
    parser.add_argument("--log-level", choices=LOG_LEVELS, default="warning", help="default warning")
    parser.set_defaults(run=transcribe)


class ProgressBar:
    """One line on a terminal, redrawn: how much of the call's audio the engines have taken, and how fast."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.started = time.monotonic()
        self.shown = -1.0
        self.tty = out.isatty()

    def __call__(self, seconds: float, total: float) -> None:
        if not self.tty or (seconds - self.shown < 0.5 and seconds < total):
            return
        self.shown = seconds
        width = max(10, min(40, shutil.get_terminal_size().columns - 50))
        part = seconds / total if total else 1.0
        speed = seconds / max(time.monotonic() - self.started, 1e-6)
        bar = "#" * int(part * width) + "." * (width - int(part * width))
        done = f"{seconds:{len(f'{total:.1f}')}.1f}/{total:.1f}"  # a fixed width: the line redraws in place
        self.out.write(f"\r[{bar}] {part:4.0%} {done} s of audio  {speed:6.1f}x real time")
        self.out.flush()

    def finish(self) -> None:
        if self.tty and self.shown >= 0:
            self.out.write("\n")


def transcribe(args: argparse.Namespace) -> int:
    import asyncio

    from receiver.logging import configure
    from receiver.loop import loop_factory
    from receiver.transcription.batch import NoRecordings, specs_for, transcribe_call
    from receiver.transcription.engine import shutdown_pools
    from receiver.transcription.transcript import transcript_path

    settings = Settings.load(args.config)
    directory = args.recordings_dir or settings.recordings_dir
    configure(fmt="console", level=args.log_level)
    specs = specs_for(settings, args.plugin)
    bar = ProgressBar(sys.stderr)
    started = time.monotonic()
    try:
        with asyncio.Runner(loop_factory=loop_factory("auto")) as runner:
            events = runner.run(transcribe_call(directory, args.call_id, specs, progress=bar))
    except NoRecordings as exc:
        print(f"receiver: {exc}", file=sys.stderr)
        return 1
    finally:
        bar.finish()
        shutdown_pools()
    wall = time.monotonic() - started
    names = ", ".join(s.name for s in specs)
    texts = sum(e.kind == "transcript" and e.final for e in events)
    print(
        f"{args.call_id}: {len(events)} events ({texts} transcripts) from {names} in {wall:.1f} s, "
        f"written to {transcript_path(directory, args.call_id)}"
    )
    return 0
