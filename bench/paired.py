"""
Two receivers side by side on one core, each under the same load: ``python -m bench.paired``.

Run one after the other, two runs of the same receiver on this machine differ by up to
10% (the hour, the host's other guests). Run at the same time on the same core, both
meet the same machine: ``B/A`` of two identical receivers comes out within 1%, so a
change of 2-3% shows (docs/performance.md). Use it to decide whether a change pays;
the matrix (``bench.matrix``) stays what the docs report.

For each repeat it starts receiver A (``--a``, a directory holding ``receiver/``) and
receiver B (``--b``) pinned to the receiver core, one Python generator per receiver
pinned to the other core (``--calls`` real-time calls in ``--format``), waits
``--warm`` seconds into the load, and reads both receivers' CPU time over
``--seconds`` from ``/proc/<pid>/task/*/schedstat`` (nanoseconds). It prints A's
and B's CPU milliseconds and ``B/A`` per repeat, then the median ``B/A``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .messages import FORMATS
from .run import ROOT, Target, _retire, free_port, log, pin, wait_listening


def cpu_ns(pid: int) -> int:
    """CPU time of every thread of ``pid`` so far, in nanoseconds (threads that ended are gone)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):  # a thread that ended meanwhile
            continue
    return total


def _start(source: Path, env: dict[str, str], core: int, recordings: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {**env, "PYTHONPATH": f"{source}{os.pathsep}{ROOT}", "RECEIVER_WEBHOOK_PORT": "0"}
    command = Target("receiver", source=str(source)).command(port, recordings, recordings.parent / "unused.json")
    proc = subprocess.Popen(
        command, cwd=recordings.parent, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        preexec_fn=pin({core}),
    )  # fmt: skip
    wait_listening(port, proc)
    return proc, port


def _generator(port: int, args: argparse.Namespace, core: int) -> subprocess.Popen[str]:
    duration = args.warm + args.seconds + 2.0
    return subprocess.Popen(
        [sys.executable, "-m", "bench.loadgen", "--port", str(port), "--calls", str(args.calls), "--mode",
         "realtime", "--duration", str(duration), "--format", args.format],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, text=True,
        preexec_fn=pin({core}),
    )  # fmt: skip


def _load_started(gen: subprocess.Popen[str]) -> None:
    """Read the generator's report until its load starts (its streams are open)."""
    assert gen.stdout is not None
    for line in gen.stdout:
        if json.loads(line).get("phase") == "load_start":
            return
    raise RuntimeError(f"generator ended before its load started ({gen.wait()})")


def pair_once(args: argparse.Namespace) -> dict[str, Any]:
    """One repeat: A's and B's CPU milliseconds over the same seconds of the same load."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-paired-"))
    procs: list[subprocess.Popen[Any]] = []
    try:
        env_b = {**os.environ, **dict(item.split("=", 1) for item in args.env_b)}
        sides = ((args.a, dict(os.environ), "a"), (args.b, env_b, "b"))
        started = []
        for source, env, name in sides:
            (tmp / name).mkdir()
            proc, port = _start(source, env, args.receiver_core, tmp / name / "recordings")
            procs.append(proc)
            started.append((proc, port))
        gens = [_generator(port, args, args.generator_core) for _, port in started]
        procs.extend(gens)
        for gen in gens:
            _load_started(gen)
        time.sleep(args.warm)
        before = [cpu_ns(proc.pid) for proc, _ in started]
        time.sleep(args.seconds)
        after = [cpu_ns(proc.pid) for proc, _ in started]
        for gen in gens:
            assert gen.stdout is not None
            gen.stdout.read()  # its result: the generator ends once it is read
            if gen.wait() != 0:
                raise RuntimeError(f"generator failed ({gen.returncode})")
        a_ms, b_ms = ((after[i] - before[i]) / 1e6 for i in range(2))
        return {"a_ms": a_ms, "b_ms": b_ms, "ratio": b_ms / a_ms}
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        _retire(tmp)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.paired", description=(__doc__ or "").split("\n\n")[0].strip()
    )
    parser.add_argument("--a", type=Path, default=ROOT, help="directory holding receiver A (default: this checkout)")
    parser.add_argument("--b", type=Path, required=True, help="directory holding receiver B (e.g. a git worktree)")
    parser.add_argument(
        "--env-b", action="append", default=[], metavar="NAME=VALUE", help="an environment setting for B only"
    )
    parser.add_argument("--format", choices=sorted(FORMATS), default="minivoice")
    parser.add_argument("--calls", type=int, default=200, help="real-time calls for each receiver")
    parser.add_argument("--warm", type=float, default=3.0, help="seconds of load before the CPU window")
    parser.add_argument("--seconds", type=float, default=8.0, help="the CPU window")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--receiver-core", type=int, default=0)
    parser.add_argument("--generator-core", type=int, default=1)
    parser.add_argument("--json", help="write every repeat here")
    args = parser.parse_args(argv)
    for side in (args.a, args.b):
        if not (side / "receiver" / "__init__.py").exists():
            parser.error(f"{side} holds no receiver/")
    if any("=" not in item for item in args.env_b):
        parser.error("--env-b takes NAME=VALUE")
    rows = []
    for k in range(args.repeat):
        row = pair_once(args)
        rows.append(row)
        log(f"repeat {k + 1}/{args.repeat}: A {row['a_ms']:.0f} ms, B {row['b_ms']:.0f} ms, B/A {row['ratio']:.3f}")
    median = statistics.median(row["ratio"] for row in rows)
    print(f"{args.format}, {args.calls} calls each, {args.seconds:g} s: B/A median {median:.3f} over {len(rows)}")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "runs": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
