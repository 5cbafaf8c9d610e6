"""
A stand-in transcription engine for the console tests, run by the ``pipe`` plugin.

It reads the track's PCM (int16 at RATE) from stdin, finds utterances by
energy (a frame over THRESHOLD starts one, HANGOVER of quiet ends it) and
prints one transcript line per utterance, timed to it, with the text the
test gave for this track (the test knows what the simulator says); with
``--keyword``, a keyword hit over the same span. Real engines are tested in
tests/transcription/; here the console is under test, not recognition.

    engine.py TRACK RATE --text TEXT [--keyword WORDS]
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

THRESHOLD = 300.0  # RMS of a 20 ms frame
HANGOVER = 0.25  # seconds of quiet that end an utterance


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("track")
    parser.add_argument("rate", type=int)
    parser.add_argument("--text", required=True)
    parser.add_argument("--keyword")
    args = parser.parse_args()
    frame = args.rate // 50
    position = 0  # samples read
    start: float | None = None
    quiet = 0.0
    pending = b""

    def emit(begin: float, end: float) -> None:
        print(json.dumps({"text": args.text, "start": round(begin, 3), "end": round(end, 3)}), flush=True)
        if args.keyword:
            print(
                json.dumps({"kind": "keyword", "text": args.keyword, "start": round(begin, 3), "end": round(end, 3)}),
                flush=True,
            )

    while chunk := sys.stdin.buffer.read1(65536):
        pending += chunk
        usable = len(pending) // (2 * frame) * (2 * frame)
        samples = np.frombuffer(pending[:usable], dtype="<i2").astype(np.float64)
        pending = pending[usable:]
        for i in range(0, len(samples), frame):
            loud = float(np.sqrt(np.mean(samples[i : i + frame] ** 2))) > THRESHOLD
            now = (position + i) / args.rate
            if loud:
                if start is None:
                    start = now
                quiet = 0.0
            elif start is not None:
                quiet += frame / args.rate
                if quiet >= HANGOVER:
                    emit(start, now - quiet + frame / args.rate)
                    start = None
        position += len(samples)
    if start is not None:
        emit(start, position / args.rate)
    return 0


if __name__ == "__main__":
    sys.exit(main())
