"""
How many streams one worker core carries (``python -m bench.worker``).

Starts a redis-server of its own (``tests/services.py``), puts ``--streams``
two-track 8 kHz streams of ``--seconds`` each on the bus at once (as
receivers would have published them, 200 ms blocks and an end entry), then
runs one ``receiver worker`` process with the ``pipe`` plugin (``wc -c`` per
track, at the stream's rate) until it has finished them all. Reported: the
worker's CPU time (its own, and its plugins' child processes apart), audio
seconds processed per CPU second, which is how many real-time streams one
core carries, and the wall time (the worker runs as fast as it can).

Every ``wc -c`` must report exactly the bytes it was due (read from the
worker's transcript log lines), or the run fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from receiver.bus import BusKeys  # noqa: E402
from receiver.bus.publisher import BusPublisher  # noqa: E402
from receiver.events import Encoding, MediaFormat, Platform, Track  # noqa: E402
from receiver.sinks import AudioBlock, StreamInfo, StreamOutcome  # noqa: E402
from tests.services import RedisServer  # noqa: E402

RATE = 8000
BLOCK = 1600


async def fill(url: str, keys: BusKeys, streams: int, seconds: float) -> None:
    rng = np.random.default_rng(1)
    blocks = int(seconds * RATE / BLOCK)
    audio = {t: rng.integers(-20000, 20000, BLOCK, dtype=np.int16) for t in (Track.INBOUND, Track.OUTBOUND)}
    async with BusPublisher(url, keys=keys, queue=10**9, max_seconds=seconds * 2) as publisher:
        for i in range(streams):
            info = StreamInfo(
                stream_id=f"str_{i}",
                call_id=f"call_{i}",
                platform=Platform.MINIVOICE,
                tracks=(Track.INBOUND, Track.OUTBOUND),
                media_format=MediaFormat(Encoding.MULAW, RATE),
            )
            publisher.stream_started(info)
            for b in range(blocks):
                publisher.audio(info, AudioBlock(b * BLOCK, RATE, audio))
            samples = blocks * BLOCK
            publisher.stream_ended(
                info, StreamOutcome(reason="stop", close_code=1000, duration_seconds=samples / RATE, samples=samples)
            )
        await publisher.flush()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=60.0, help="audio per stream")
    parser.add_argument("--worker-streams", type=int, default=16, help="streams the worker runs at once")
    args = parser.parse_args()

    redis = RedisServer()
    keys = BusKeys("benchworker")
    try:
        asyncio.run(fill(redis.url, keys, args.streams, args.seconds))
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp) / "worker.toml"
            config.write_text('[[sinks]]\nplugin = "pipe"\noptions = { command = "wc -c", sample_rate = 8000 }\n')
            env = {k: v for k, v in os.environ.items() if not k.startswith("RECEIVER_")}
            env.update(RECEIVER_BUS_URL=redis.url, RECEIVER_BUS_PREFIX=keys.prefix, RECEIVER_LOG_FORMAT="json")
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.monotonic()
            proc = subprocess.Popen(
                [sys.executable, "-m", "receiver", "worker", "--config", str(config), "--database",
                 str(Path(tmp) / "calls.db"), "--streams", str(args.worker_streams), "--recordings-dir", tmp],
                cwd=tmp, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                text=True,
            )  # fmt: skip
            done, counts = 0, []
            assert proc.stderr is not None
            for line in proc.stderr:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if event.get("event") == "transcript":
                    counts.append(int(event["text"]))
                if event.get("event") == "bus_stream_done":
                    done += 1
                    if done == args.streams:
                        break
            wall = time.monotonic() - started
            worker_cpu = _process_cpu(proc.pid)
            proc.terminate()
            proc.wait(30)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
    finally:
        redis.stop()
    total_cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    due = int(args.seconds * RATE / BLOCK) * BLOCK * 2
    assert sorted(set(counts)) == [due] and len(counts) == 2 * args.streams, (counts[:5], due)
    audio_seconds = args.streams * int(args.seconds * RATE / BLOCK) * BLOCK / RATE
    print(f"{args.streams} two-track streams x {args.seconds:g} s through one worker (pipe: wc -c per track)")
    print(f"wall {wall:.2f} s; worker CPU {worker_cpu:.2f} s; worker + wc processes {total_cpu:.2f} s")
    print(f"real-time streams per worker core: {audio_seconds / worker_cpu:.0f} (worker process alone)")
    print(f"real-time streams per core, plugins' processes included: {audio_seconds / total_cpu:.0f}")
    return 0


def _process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


if __name__ == "__main__":
    raise SystemExit(main())
