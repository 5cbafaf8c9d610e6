"""
How many tracks the built-in engine keeps up with in real time, and what the pipe plugin costs.

    .venv/bin/python scripts/bench_transcription.py engine --tracks 2 4 6 8 --seconds 60
    .venv/bin/python scripts/bench_transcription.py pipe --tracks 2 10 20 --seconds 30
    .venv/bin/python scripts/bench_transcription.py cpu --seconds 60 [--whisper base=DIR tiny.en=DIR]
    .venv/bin/python scripts/bench_transcription.py engine --tracks 2 4 --whisper base=DIR

``engine``: N tracks (N/2 two-track calls) of espeak-ng speech (about 70% of the
time talking) are streamed to a local receiver at real-time pace, with the
``pocketsphinx`` plugin on both tracks. For every transcript event the lag is
the wall time it was published minus the wall time its audio ended. The engine
keeps up when the lag stays flat (second half no worse than the first) and no
utterance was dropped.

``cpu``: the engine's CPU time per second of such a track (decoded offline in
this process), which does not depend on what else runs on the machine; with
``--whisper LABEL=MODEL_DIR`` (the whisper plugin's int8 decoding, one thread,
as each of its worker processes runs it) next to pocketsphinx's, in one run.
With ``--whisper`` the ``engine`` run streams to the whisper plugin (the first
model given) instead of pocketsphinx.

``pipe``: the same pacing with the ``pipe`` plugin running ``cat > /dev/null``
on every track, against the same streams with no sink; the difference in the
receiver's own CPU time, per track, is the plugin's overhead (the commands'
CPU is reported apart).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import uvloop
from websockets.asyncio.client import connect

sys.path.insert(0, str(Path(__file__).parents[1]))

from receiver.app import ReceiverServer  # noqa: E402
from receiver.codecs import encode_ulaw  # noqa: E402
from receiver.config import Settings  # noqa: E402
from receiver.logging import configure  # noqa: E402
from receiver.testing import MiniVoiceMessages  # noqa: E402
from receiver.transcription import transcript as transcript_module  # noqa: E402
from tests.transcription.helpers import speak  # noqa: E402

PHRASES = [
    "thank you for calling how can I help you today",
    "I would like to cancel my order please",
    "can you tell me my account balance",
    "the package never arrived and I want a refund",
    "let me check that for you one moment",
    "is there anything else I can help you with",
]


def conversation(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pieces, total = [], 0
    spoken = [speak(p) for p in PHRASES]
    while total < seconds * 8000:
        pieces.append(spoken[rng.integers(len(spoken))])
        pieces.append(np.zeros(int(8000 * rng.uniform(0.6, 1.2)), dtype=np.int16))
        total += len(pieces[-1]) + len(pieces[-2])
    return np.concatenate(pieces)[: int(seconds * 8000)]


async def stream(port: int, call: int, inbound: np.ndarray, outbound: np.ndarray, starts: dict[str, float]) -> None:
    msgs = MiniVoiceMessages(stream_id=f"str_{call}", call_id=f"call_{call}")
    async with connect(f"ws://127.0.0.1:{port}/") as ws:
        await ws.send(msgs.connected())
        await ws.send(msgs.start())
        t0 = starts[msgs.stream_id] = time.monotonic()
        for chunk, offset in enumerate(range(0, len(inbound), 160), start=1):
            delay = t0 + offset / 8000 - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            for track, audio in (("inbound", inbound), ("outbound", outbound)):
                await ws.send(msgs.media(track, chunk, offset // 8, encode_ulaw(audio[offset : offset + 160])))
        await ws.send(msgs.stop())
        await ws.wait_closed()


async def run(
    tracks: int, seconds: float, sinks: tuple[dict[str, Any], ...], audio: list[np.ndarray]
) -> dict[str, Any]:
    lags: list[tuple[float, float]] = []  # (media end, lag)
    starts: dict[str, float] = {}
    original = transcript_module.StreamTranscripts.put

    def put(self: Any, event: Any) -> None:
        t0 = starts.get(event.stream_id)
        if t0 is not None and event.kind != "speech":
            lags.append((event.end, time.monotonic() - (t0 + event.end)))
        original(self, event)

    transcript_module.StreamTranscripts.put = put  # type: ignore[method-assign]
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            host="127.0.0.1",
            port=0,
            recordings_dir=tmp,
            wav=False,
            sinks=sinks,
            log_level="warning",
            sink_close_timeout=120,
        )
        async with ReceiverServer(settings) as server:
            calls = max(1, tracks // 2)
            before = resource.getrusage(resource.RUSAGE_SELF)
            children = resource.getrusage(resource.RUSAGE_CHILDREN)
            wall = time.monotonic()
            await asyncio.gather(
                *(
                    stream(server.port, i, audio[(2 * i) % len(audio)], audio[(2 * i + 1) % len(audio)], starts)
                    for i in range(calls)
                )
            )
            while server.active_streams:
                server.stream_ended.clear()
                if server.active_streams:
                    await server.stream_ended.wait()
            wall = time.monotonic() - wall
            after = resource.getrusage(resource.RUSAGE_SELF)
            children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
            outcomes = server.outcomes
    transcript_module.StreamTranscripts.put = original  # type: ignore[method-assign]
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    child_cpu = (children_after.ru_utime + children_after.ru_stime) - (children.ru_utime + children.ru_stime)
    half = seconds / 2
    first = [lag for end, lag in lags if end < half]
    second = [lag for end, lag in lags if end >= half]
    return {
        "tracks": 2 * calls,
        "wall": round(wall, 1),
        "receiver_cpu": round(cpu, 2),
        "children_cpu": round(child_cpu, 2),
        "events": len(lags),
        "lag_p50": round(statistics.median(lag for _e, lag in lags), 2) if lags else None,
        "lag_max_first_half": round(max(first), 2) if first else None,
        "lag_max_second_half": round(max(second), 2) if second else None,
        "sink_losses": sum(sum(o.sink_losses.values()) for o in outcomes),
    }


def _run(coro: Any) -> dict[str, Any]:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)  # type: ignore[no-any-return]


def _report(label: str, cpu: float, seconds: float) -> None:
    cores = os.cpu_count() or 1
    print(
        f"{label}: {cpu:.1f} CPU s for {seconds:.0f} s of track: {cpu / seconds:.3f} CPU s per second of audio, "
        f"{cores} cores keep up with about {int(cores * seconds / cpu)} tracks",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["engine", "pipe", "cpu"])
    parser.add_argument("--tracks", type=int, nargs="+", default=[2, 4, 6])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--keywords", action="store_true", help="keyword spotting instead of the language model")
    parser.add_argument("--whisper", nargs="+", default=[], metavar="LABEL=DIR", help="whisper models to measure")
    args = parser.parse_args()
    whispers = dict(w.split("=", 1) for w in args.whisper)
    configure(fmt="json", level="warning")
    audio = [conversation(args.seconds, seed) for seed in range(8)]
    print(f"cpus={os.cpu_count()} seconds={args.seconds}", flush=True)
    if args.what == "cpu":
        from receiver.transcription.audio import convert
        from receiver.transcription.sphinx import SphinxOptions, transcribe

        track = convert(audio[0], 8000, 16000)
        for label, options in (
            ("language model", SphinxOptions()),
            ("keywords", SphinxOptions.parse(keywords=["cancel my order", "refund"])),
        ):
            transcribe(track[: 16000 * 3], options)  # load the model first
            cpu = time.process_time()
            transcribe(track, options)
            cpu = time.process_time() - cpu
            _report(label, cpu, args.seconds)
        for label, model in whispers.items():
            from receiver.transcription import whisper

            whisper_options = whisper.WhisperOptions.parse(model=model)
            whisper.transcribe(track[: 16000 * 3], whisper_options)  # load the model first
            cpu = time.process_time()
            whisper.transcribe(track, whisper_options)
            _report(f"whisper {label} int8", time.process_time() - cpu, args.seconds)
        return
    for n in args.tracks:
        if args.what == "engine" and whispers:
            model = next(iter(whispers.values()))
            result = _run(run(n, args.seconds, ({"plugin": "whisper", "options": {"model": model}},), audio))
        elif args.what == "engine":
            options = {"keywords": ["cancel my order", "refund"]} if args.keywords else {}
            result = _run(run(n, args.seconds, ({"plugin": "pocketsphinx", "options": options},), audio))
        else:
            base = _run(run(n, args.seconds, (), audio))
            result = _run(
                run(
                    n,
                    args.seconds,
                    ({"plugin": "pipe", "options": {"command": ["sh", "-c", "cat > /dev/null"]}},),
                    audio,
                )
            )
            extra = result["receiver_cpu"] - base["receiver_cpu"]
            result["receiver_cpu_without_sinks"] = base["receiver_cpu"]
            result["overhead_cpu_percent_per_track"] = round(100 * extra / args.seconds / result["tracks"], 3)
            result["command_cpu_percent_per_track"] = round(
                100 * result["children_cpu"] / args.seconds / result["tracks"], 3
            )
        print(result, flush=True)


if __name__ == "__main__":
    main()
