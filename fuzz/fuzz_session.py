#!/usr/bin/env python3
"""
Coverage-guided fuzzing (atheris/libFuzzer) of the stream session, the
platform parsers, the codecs and the media clock.

One input is a whole stream: its lines are the WebSocket messages. Every line
also goes to every parser on its own. The contract (``fuzz/targets.py``): events,
None, or a documented ``StreamProtocolError``; the media clock's invariants hold
after every frame. Anything else is a crash, saved by libFuzzer as ``crash-*``.

    python fuzz/fuzz_session.py fuzz/corpus -max_total_time=600   # make fuzz
    python fuzz/fuzz_session.py crash-<hash>                      # replay one input

Start from a copy of ``fuzz/corpus`` if you do not want libFuzzer to add the
inputs it finds interesting to it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

with atheris.instrument_imports(include=["receiver", "fuzz"]):
    import orjson

    from fuzz.targets import parse_one, run_session


def test_one_input(data: bytes) -> None:
    lines = data.split(b"\n")[:200]
    run_session(lines)
    for line in lines[:20]:
        try:
            message = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(message, dict):
            parse_one(message)


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
