"""
The benchmark driver: ``python -m bench [options]``.

For every target (the receiver, the bare baseline, optionally the receiver
with an instrumented latency sink) and every repeat, it:

1. starts the target as a subprocess on a free port, with a fresh temporary
   recordings directory (the WAV sink on: inbound, outbound and stereo
   files), pinned to its own core(s) with ``sched_setaffinity``;
2. starts the load generator (``bench/loadgen.py``) pinned to the other core;
3. reads the target's CPU time (utime + stime, summed over its workers) from
   ``/proc/<pid>/stat`` when the load starts and once every call has been
   stopped and closed, and samples its RSS every 200 ms;
4. reports CPU µs per media message, messages per second, implied two-track
   calls per core, peak RSS and memory per call, how late the generator ran,
   and whether the target fell behind.

Then it prints medians over the repeats and the receiver/baseline ratio, and
writes every run to ``--json`` (default ``bench/results/latest.json``).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import procstat
from .messages import FORMATS, frames_per_tick

ROOT = Path(__file__).resolve().parent.parent
MSGS_PER_CALL_S = 100  # two tracks, one message per 20 ms each


def msgs_per_call_s(fmt: str) -> int:
    """Media messages per call-second: one per track and 20 ms, or one binary frame per 20 ms
    (Vonage, Exotel and audio_fork send one track; jambonz and AudioHook interleave two)."""
    return MSGS_PER_CALL_S // 2 * frames_per_tick(fmt)


@dataclass
class Target:
    name: str
    workers: int = 1
    latency: bool = False
    source: str | None = None  # another checkout's directory holding receiver/ (--compare)
    bus: str | None = None  # a Redis URL: every stream also published to the audio bus (--bus)

    def command(self, port: int, recordings: Path, out: Path) -> list[str]:
        py = sys.executable
        if self.name == "baseline":
            return [py, "-m", "bench.baseline", "--port", str(port)]
        if self.latency:
            return [
                py,
                "-m",
                "bench.latency",
                "--port",
                str(port),
                "--recordings-dir",
                str(recordings),
                "--out",
                str(out),
            ]
        return [
            py, "-m", "receiver", "serve", "--port", str(port), "--recordings-dir", str(recordings),
            "--workers", str(self.workers), "--log-format", "json",
        ]  # fmt: skip

    @property
    def label(self) -> str:
        if self.source:
            return f"receiver@{Path(self.source).name}"
        if self.name == "baseline":
            return "baseline"
        if self.latency:
            return "receiver+latency"
        if self.bus:
            return "receiver+bus"
        return "receiver" if self.workers == 1 else f"receiver x{self.workers}"


@dataclass
class Sampler:
    """Samples a process tree's RSS in a thread."""

    pid: int
    samples: list[tuple[float, int]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        pids = procstat.tree(self.pid)
        last_tree = time.monotonic()
        while not self.stop.wait(0.2):
            if time.monotonic() - last_tree > 2:
                pids, last_tree = procstat.tree(self.pid), time.monotonic()
            self.samples.append((time.monotonic(), procstat.memory(pids)[0]))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"target exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("target did not start listening")


NICE = 0  # set by --nice


def pin(cores: set[int] | None) -> Any:
    def preexec() -> None:
        if cores:
            os.sched_setaffinity(0, cores)
        if NICE:
            with contextlib.suppress(OSError):  # raising priority needs root (or CAP_SYS_NICE)
                os.setpriority(os.PRIO_PROCESS, 0, NICE)

    return preexec


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_once(target: Target, args: argparse.Namespace, cores: dict[str, set[int] | None]) -> dict[str, Any]:
    port = free_port()
    tmp = Path(tempfile.mkdtemp(prefix="bench-"))
    recordings = tmp / "recordings"
    out = tmp / "latency.json"
    # The webhook listener (on by default) on a free port: a fixed 8081 may be taken.
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RECEIVER_WEBHOOK_PORT": "0"}
    if args.mode == "flood":
        # A flood sends thousands of messages a second per connection, over the default
        # rate limit (1000/s, close 4429). The check costs the same with the limit off.
        env["RECEIVER_MAX_MESSAGES_PER_SECOND"] = "0"
        # It also runs media time far ahead of wall time (close 4425): no bound either.
        env["RECEIVER_MAX_MEDIA_LEAD_SECONDS"] = "0"
    target_env = {**env, "PYTHONPATH": f"{target.source}{os.pathsep}{ROOT}"} if target.source else env
    if target.bus:
        # Nobody consumes in this run: the publisher's trimming (MAXLEN ~) keeps Redis small.
        target_env = {**target_env, "RECEIVER_BUS_URL": target.bus, "RECEIVER_BUS_PREFIX": f"bench{port}"}
    receiver_log = open(tmp / "target.log", "wb")  # noqa: SIM115 - closed in finally
    receiver_cores = cores["receiver"] if target.workers == 1 else cores["workers"]
    proc = subprocess.Popen(
        target.command(port, recordings, out), cwd=tmp, env=target_env, stdout=receiver_log, stderr=subprocess.STDOUT,
        preexec_fn=pin(receiver_cores),
    )  # fmt: skip
    gen: subprocess.Popen[str] | None = None
    sampler: Sampler | None = None
    try:
        wait_listening(port, proc)
        if target.workers > 1:
            # Every worker must have bound the port before load arrives.
            deadline = time.monotonic() + 30
            while len(procstat.tree(proc.pid)) < target.workers + 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(1.0)
        pids = procstat.tree(proc.pid)
        idle_rss = procstat.memory(pids)[0]
        sampler = Sampler(proc.pid)
        threading.Thread(target=sampler.run, daemon=True).start()
        drive = _drive_node if args.generator == "node" else _drive_python
        gen, d = drive(target, args, env, cores, port, proc.pid, pids, idle_rss)
        result, pids = d.result, d.pids
        split0, split1, cpu0, cpu1, t_start, t_end = (
            d.split0,
            d.split1,
            sum(d.split0),
            sum(d.split1),
            d.t_start,
            d.t_end,
        )
        connected_rss = d.connected_rss
        # Still busy after every call was closed? (It should not be.)
        time.sleep(0.5)
        cpu_after = procstat.cpu_seconds(pids) - cpu1
        sampler.stop.set()
        peak = max((rss for _, rss in sampler.samples), default=idle_rss)
        msgs = result["media_messages"]
        cpu = cpu1 - cpu0
        us = cpu / max(1, msgs) * 1e6
        load_rss = [(t, r) for t, r in sampler.samples if t_start + 0.5 * (t_end - t_start) <= t <= t_end]
        slope = _slope(load_rss)
        rtt = result["ping_rtt_ms"]
        codes = result["close_codes"]
        fell_behind = bool(
            result["drain_error"]
            or result["drain_seconds"] > 1.0
            or rtt["last_quarter_p50"] > 4 * rtt["first_quarter_p50"] + 20
            or set(codes) != {"1000"}
        )
        row = {
            "target": target.label,
            "workers": target.workers,
            "mode": args.mode,
            "calls": args.calls,
            "duration": args.duration,
            "media_messages": msgs,
            "cpu_seconds": cpu,
            "cpu_us_per_msg": us,
            "user_us_per_msg": (split1[0] - split0[0]) / max(1, msgs) * 1e6,
            "sys_us_per_msg": (split1[1] - split0[1]) / max(1, msgs) * 1e6,
            "msgs_per_s": msgs / result["load_seconds"],
            "cpu_utilisation": cpu / max(1e-9, t_end - t_start),
            "calls_per_core": 1e6 / (us * msgs_per_call_s(args.format)) if us else None,
            "idle_rss_mb": idle_rss / 2**20,
            "peak_rss_mb": peak / 2**20,
            "mb_per_call": (peak - idle_rss) / 2**20 / args.calls,
            "connected_mb_per_call": (connected_rss - idle_rss) / 2**20 / args.calls,
            "rss_slope_mb_per_min": slope * 60 / 2**20,
            "busy_after_ms": cpu_after * 1e3,
            "fell_behind": fell_behind,
            "generator": result,
        }
        if target.latency:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
            with contextlib.suppress(OSError, ValueError):
                row["latency"] = json.loads(out.read_text())
        return row
    finally:
        if sampler is not None:
            sampler.stop.set()
        if gen is not None and gen.poll() is None:
            gen.kill()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        receiver_log.close()
        if args.keep:
            log(f"  kept {tmp}")
        else:
            _retire(tmp)


# Run directories emptied but not yet deleted: see _retire.
_SPENT: list[Path] = []


def _retire(tmp: Path) -> None:
    """Empty a finished run's directory now and delete it when the bench exits.

    Deleting a run's files between runs made the next receiver run pay for it. On ext4
    without a journal (this machine's root file system), allocating an inode skips each
    free inode of its group freed in the last minute (five while the inode's table block
    is dirty), reading every one: after a run deleted its 800 files (200 calls: a
    directory and three WAV files each), the next receiver run spent 0.8 ms more CPU a
    stream creating its files (docs/performance.md). Truncating frees the space and keeps
    the inodes; one bench process (a matrix too) deletes nothing until it ends.
    """
    for path in tmp.rglob("*"):
        with contextlib.suppress(OSError):
            if path.is_file() and not path.is_symlink():
                os.truncate(path, 0)
    if not _SPENT:
        atexit.register(_remove_spent)
    _SPENT.append(tmp)


def _remove_spent() -> None:
    for tmp in _SPENT:
        shutil.rmtree(tmp, ignore_errors=True)
    _SPENT.clear()


@dataclass
class Drive:
    """What one generator run measured of the target."""

    result: dict[str, Any]
    pids: list[int]
    split0: tuple[float, float] = (0.0, 0.0)  # (user, system) CPU seconds when the load started
    split1: tuple[float, float] = (0.0, 0.0)  # ... and when every call was stopped and closed
    t_start: float = 0.0
    t_end: float = 0.0
    connected_rss: int = 0


def _drive_python(
    target: Target, args: argparse.Namespace, env: dict[str, str], cores: dict[str, set[int] | None],
    port: int, pid: int, pids: list[int], idle_rss: int,
) -> tuple[subprocess.Popen[str], Drive]:  # fmt: skip
    """``bench/loadgen.py``: it reports its phases, so the CPU window is exact."""
    gen = subprocess.Popen(
        [sys.executable, "-m", "bench.loadgen", "--port", str(port), "--calls", str(args.calls),
         "--mode", args.mode, "--duration", str(args.duration), "--format", args.format],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True, preexec_fn=pin(cores["generator"]),
    )  # fmt: skip
    try:
        return gen, _read_python(gen, target, pid, pids, idle_rss)
    except BaseException:
        gen.kill()
        raise


def _read_python(gen: subprocess.Popen[str], target: Target, pid: int, pids: list[int], idle_rss: int) -> Drive:
    assert gen.stdout is not None
    result: dict[str, Any] = {}
    cpu0 = 0.0
    split0 = split1 = (0.0, 0.0)
    t_start = t_end = 0.0
    connected_rss = idle_rss
    last_cpu, last_t = 0.0, time.monotonic()
    for line in gen.stdout:
        msg = json.loads(line)
        phase = msg.get("phase")
        if phase == "connected":
            connected_rss = procstat.memory(pids)[0]
        elif phase == "load_start":
            pids = procstat.tree(pid)
            split0 = procstat.cpu_split(pids)
            cpu0, t_start = sum(split0), time.monotonic()
            last_cpu, last_t = cpu0, t_start
        elif phase == "drained":
            split1 = procstat.cpu_split(pids)
            t_end = time.monotonic()
        elif msg.get("progress"):
            now, cpu = time.monotonic(), procstat.cpu_seconds(pids)
            log(
                f"  [{target.label}] t={msg['t']:5.1f}s sent={msg['sent']:>9} "
                f"rate={msg['rate']:>7}/s target cpu={(cpu - last_cpu) / (now - last_t) * 100:5.1f}%"
            )
            last_cpu, last_t = cpu, now
        elif "result" in msg:
            result = msg["result"]
    gen.wait()
    if gen.returncode != 0 or not result:
        raise RuntimeError(f"generator failed ({gen.returncode})")
    return Drive(result, pids, split0, split1, t_start, t_end, connected_rss)


def loadgen_js() -> Path:
    """The independent Node generator: ``$RECEIVER_LOADGEN_JS``, or ``shared/bench/loadgen.js`` beside the checkout."""
    if os.environ.get("RECEIVER_LOADGEN_JS"):
        return Path(os.environ["RECEIVER_LOADGEN_JS"])
    for up in (ROOT.parent, ROOT.parent.parent):
        path = up / "shared" / "bench" / "loadgen.js"
        if path.exists():
            return path
    raise RuntimeError("no loadgen.js: set RECEIVER_LOADGEN_JS (and NODE_PATH to its `ws` install)")


def _drive_node(
    target: Target, args: argparse.Namespace, env: dict[str, str], cores: dict[str, set[int] | None],
    port: int, pid: int, pids: list[int], idle_rss: int,
) -> tuple[subprocess.Popen[str], Drive]:  # fmt: skip
    """``shared/bench/loadgen.js`` (Node ``ws``), written apart from the project.

    It reports nothing until it ends, so the CPU window opens when the target
    has accepted every TCP connection (``/proc/net/tcp``; the last batch of 50
    handshakes and the ``start`` messages fall inside it, for every target
    alike) and closes when the generator exits (every close acknowledged).
    """
    # A flood sends a fixed --messages per call: ten times what --duration of real time
    # would, so at the ~30,000 messages a second a core takes the load lasts about
    # --duration seconds for 50 calls (and the CPU window's 10 ms ticks stay small).
    per_call = int(args.duration * msgs_per_call_s(args.format) * (10 if args.mode == "flood" else 1))
    node_env = {**env, "NODE_PATH": env.get("NODE_PATH") or args.node_modules}
    gen = subprocess.Popen(
        ["node", str(loadgen_js()), "--url", f"ws://127.0.0.1:{port}/{args.format}", "--mode", args.mode,
         "--calls", str(args.calls), "--duration", str(args.duration), "--messages", str(per_call),
         "--track", "both", "--format", args.format, "--json"],
        cwd=ROOT, env=node_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=pin(cores["generator"]),
    )  # fmt: skip
    try:
        connected_rss = idle_rss
        deadline = time.monotonic() + 60
        while procstat.established(port) < args.calls and gen.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        pids = procstat.tree(pid)
        split0, t_start = procstat.cpu_split(pids), time.monotonic()
        connected_rss = procstat.memory(pids)[0]
        out, err = gen.communicate()
        split1, t_end = procstat.cpu_split(pids), time.monotonic()
    except BaseException:
        gen.kill()
        raise
    if gen.returncode != 0 or not out.strip():
        raise RuntimeError(f"loadgen.js failed ({gen.returncode}): {err.strip()[-500:]}")
    log("  " + err.strip().replace("\n", "\n  "))
    return gen, Drive(
        _node_result(json.loads(out.strip().splitlines()[-1])), pids, split0, split1, t_start, t_end, connected_rss
    )


def _node_result(res: dict[str, Any]) -> dict[str, Any]:
    """loadgen.js's report in the shape of ``bench/loadgen.py``'s (its own fields kept under ``node``)."""
    per_s = [x or 0.0 for x in res.get("ping_rtt_max_per_s") or [0.0]]  # a second with no pong is null
    quarter = max(1, len(per_s) // 4)
    send_span = res.get("send_span_s", res["elapsed_s"])
    return {
        "mode": res["mode"],
        "calls": res["calls"],
        "media_messages": res["media_msgs"],
        "load_seconds": send_span,
        "drain_seconds": res["close_ack_ms"]["max"] / 1e3,
        "drain_error": f"{res['errors']} connection(s) failed" if res["errors"] else None,
        "generator_cpu_us_per_msg": res["loadgen_cpu_us_per_msg"],
        "lateness_ms": {
            "p50": res.get("send_lag_ms", {}).get("p50", 0.0),
            "p99": res.get("send_lag_ms", {}).get("p99", 0.0),
        },
        "ping_rtt_ms": {
            "first_quarter_p50": statistics.median(per_s[:quarter]),
            "last_quarter_p50": statistics.median(per_s[-quarter:]),
        },
        "close_codes": {"1000": res["calls"]} if not res["errors"] else {"error": res["errors"]},
        "node": res,
    }


def _slope(points: list[tuple[float, int]]) -> float:
    """Least-squares bytes per second over the samples (0 with fewer than 3)."""
    if len(points) < 3:
        return 0.0
    ts = [t for t, _ in points]
    rs = [r for _, r in points]
    mt, mr = statistics.fmean(ts), statistics.fmean(rs)
    den = sum((t - mt) ** 2 for t in ts)
    return sum((t - mt) * (r - mr) for t, r in points) / den if den else 0.0


def summarise(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Medians per target over the repeats."""
    out: dict[str, dict[str, Any]] = {}
    for label in dict.fromkeys(r["target"] for r in rows):
        mine = [r for r in rows if r["target"] == label]

        def med(key: str, rows: list[dict[str, Any]] = mine) -> float:
            return statistics.median(r[key] for r in rows)

        # None in a run that measured no CPU time (under one clock tick: a smoke run's few messages)
        per_core = [r["calls_per_core"] for r in mine if r["calls_per_core"] is not None]

        out[label] = {
            "runs": len(mine),
            "cpu_us_per_msg": med("cpu_us_per_msg"),
            "cpu_us_per_msg_all": [round(r["cpu_us_per_msg"], 2) for r in mine],
            "user_us_per_msg": med("user_us_per_msg"),
            "sys_us_per_msg": med("sys_us_per_msg"),
            "msgs_per_s": med("msgs_per_s"),
            "calls_per_core": statistics.median(per_core) if per_core else None,
            "peak_rss_mb": med("peak_rss_mb"),
            "mb_per_call": med("mb_per_call"),
            "rss_slope_mb_per_min": med("rss_slope_mb_per_min"),
            "lateness_p99_ms": statistics.median(r["generator"]["lateness_ms"]["p99"] for r in mine),
            "generator_us_per_msg": statistics.median(r["generator"]["generator_cpu_us_per_msg"] for r in mine),
            "fell_behind": any(r["fell_behind"] for r in mine),
        }
        lat = [r["latency"] for r in mine if r.get("latency") and r["latency"].get("p99_ms") is not None]
        if lat:
            out[label]["latency_p99_ms"] = statistics.median(x["p99_ms"] for x in lat)
            out[label]["latency_p50_ms"] = statistics.median(x["p50_ms"] for x in lat)
            sent = [x for x in lat if x.get("scheduled_p99_ms") is not None]
            if sent:
                out[label]["sent_p50_ms"] = statistics.median(x.get("scheduled_p50_ms") or 0.0 for x in sent)
                out[label]["sent_p99_ms"] = statistics.median(x["scheduled_p99_ms"] for x in sent)
    base = out.get("baseline")
    if base:
        for s in out.values():
            s["ratio_to_baseline"] = s["cpu_us_per_msg"] / base["cpu_us_per_msg"] if base["cpu_us_per_msg"] else None
    return out


def _num(value: float | None) -> str:
    """A whole number, or '-' for a figure the run could not measure."""
    return "-" if value is None else f"{value:.0f}"


def table(summary: dict[str, dict[str, Any]], args: argparse.Namespace) -> str:
    head = (
        f"{args.mode}, {args.calls} two-track {args.format} calls, {args.generator} generator, {args.duration:g} s, {args.repeat} run(s) each, "
        f"{os.cpu_count()} cores; medians\n"
        "| target | CPU µs/msg | ratio | msgs/s | calls/core | peak RSS MB | MB/call | RSS slope MB/min "
        "| gen late p99 ms | gen µs/msg | fell behind |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for label, s in summary.items():
        ratio = s.get("ratio_to_baseline")
        lines.append(
            f"| {label} | {s['cpu_us_per_msg']:.2f} | {'' if ratio is None else f'{ratio:.2f}'} | {s['msgs_per_s']:.0f} "
            f"| {_num(s['calls_per_core'])} | {s['peak_rss_mb']:.1f} | {s['mb_per_call']:.3f} | {s['rss_slope_mb_per_min']:.2f} "
            f"| {s['lateness_p99_ms']:.2f} | {s['generator_us_per_msg']:.2f} | {'yes' if s['fell_behind'] else 'no'} |"
        )
        if "latency_p99_ms" in s:
            lines.append(
                f"|  ↳ arrival→sink | p50 {s['latency_p50_ms']:.1f} ms | p99 {s['latency_p99_ms']:.1f} ms | | | | | | | | |"
            )
        if "sent_p99_ms" in s:  # from when the generator was due to send the frame: its lateness included
            lines.append(
                f"|  ↳ due→sink | p50 {s['sent_p50_ms']:.1f} ms | p99 {s['sent_p99_ms']:.1f} ms | | | | | | | | |"
            )
    return head + "\n".join(lines)


def chart(rows: list[dict[str, Any]], path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("  (no matplotlib: no chart)")
        return
    labels = list(dict.fromkeys(r["target"] for r in rows))
    fig, ax = plt.subplots(figsize=(6, 3))
    for i, label in enumerate(labels):
        values = [r["cpu_us_per_msg"] for r in rows if r["target"] == label]
        ax.scatter([i] * len(values), values)
        ax.bar(i, statistics.median(values), alpha=0.3)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_ylabel("CPU µs per media message")
    fig.tight_layout()
    fig.savefig(path)


def _run_all(
    targets: list[Target], args: argparse.Namespace, cores: dict[str, set[int] | None], rows: list[dict[str, Any]]
) -> None:
    for i in range(args.repeat):
        for target in targets:  # interleaved, so drift on a shared machine hits every target alike
            log(f"run {i + 1}/{args.repeat}: {target.label}")
            row = run_once(target, args, cores)
            rows.append(row)
            log(
                f"  => {row['cpu_us_per_msg']:.2f} µs/msg (user {row['user_us_per_msg']:.2f}, sys {row['sys_us_per_msg']:.2f}), {row['msgs_per_s']:.0f} msgs/s, "
                f"{_num(row['calls_per_core'])} calls/core, peak {row['peak_rss_mb']:.1f} MB "
                f"({row['mb_per_call']:.3f} MB/call), generator late p99 {row['generator']['lateness_ms']['p99']:.2f} ms, "
                f"drain {row['generator']['drain_seconds'] * 1e3:.0f} ms, fell behind: {row['fell_behind']}"
                + (
                    f", arrival→sink p99 {row['latency']['p99_ms']:.1f} ms"
                    if row.get("latency", {}).get("p99_ms")
                    else ""
                )
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=["realtime", "flood"], default="realtime")
    parser.add_argument("--calls", type=int, default=200, help="two-track calls")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load per run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per target (medians are reported)")
    parser.add_argument("--workers", default="1", help="receiver worker counts to run, e.g. 1,2")
    parser.add_argument("--no-baseline", action="store_true", help="skip the bare baseline")
    parser.add_argument("--latency", action="store_true", help="also run the receiver with a latency sink")
    parser.add_argument(
        "--compare", action="append", default=[], metavar="DIR",
        help="also run the receiver from DIR/receiver (e.g. an older commit: git archive REV receiver | tar -x -C DIR)",
    )  # fmt: skip
    parser.add_argument(
        "--bus", action="store_true",
        help="also run the receiver publishing every stream to the audio bus (a redis-server of its own)",
    )  # fmt: skip
    parser.add_argument(
        "--generator", choices=["python", "node"], default="python",
        help="python: bench/loadgen.py; node: the independent shared/bench/loadgen.js (Node `ws`; see bench/README.md)",
    )  # fmt: skip
    parser.add_argument(
        "--format", choices=list(FORMATS), default="minivoice",
        help="wire format sent (the Node generator: minivoice and twilio only; bench/README.md lists what each sends)",
    )  # fmt: skip
    parser.add_argument(
        "--node-modules", default=os.environ.get("NODE_PATH", "/tmp/lg/node_modules"),
        help="where `npm install ws bufferutil utf-8-validate` put the Node generator's modules ($NODE_PATH)",
    )  # fmt: skip
    parser.add_argument("--receiver-core", type=int, default=0)
    parser.add_argument("--generator-core", type=int, default=1)
    parser.add_argument(
        "--nice", type=int, default=-10,
        help="priority of the target and the generator (default -10 where allowed: other tenants of a shared machine "
        "disturb the generator's pacing less; 0 to leave it)",
    )  # fmt: skip
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "latest.json"))
    parser.add_argument("--chart", help="write a PNG chart here (needs matplotlib)")
    parser.add_argument("--keep", action="store_true", help="keep each run's temporary directory (logs, WAVs)")
    parser.add_argument("--smoke", action="store_true", help="a few seconds: 10 calls, 2 s, one run each")
    args = parser.parse_args(argv)
    if args.generator == "node" and args.format not in ("minivoice", "twilio"):
        parser.error("loadgen.js speaks minivoice and twilio only")
    global NICE
    NICE = args.nice
    # SIGTERM unwinds like Ctrl-C, so every run's finally stops its subprocesses.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.smoke:
        args.calls, args.duration, args.repeat = 10, 2.0, 1
        args.latency = True
    ncpu = os.cpu_count() or 1
    cores: dict[str, set[int] | None] = {
        "receiver": {args.receiver_core % ncpu},
        "generator": {args.generator_core % ncpu},
        "workers": None,  # several workers: all cores, shared with the generator
    }
    targets = [Target("receiver", workers=int(w)) for w in args.workers.split(",")]
    if not args.no_baseline:
        targets.append(Target("baseline"))
    if args.latency:
        targets.append(Target("receiver", latency=True))
    targets.extend(Target("receiver", source=str(Path(d).resolve())) for d in args.compare)
    redis_server = None
    if args.bus:
        from tests.services import RedisServer

        redis_server = RedisServer()
        targets.append(Target("receiver", bus=redis_server.url))
    log(
        f"bench: {args.generator} generator, {args.format}, {args.mode}, {args.calls} calls x {args.duration:g} s, {args.repeat} repeat(s); "
        f"targets {', '.join(t.label for t in targets)}; receiver on core {cores['receiver']}, generator on {cores['generator']}"
    )
    rows = []
    try:
        _run_all(targets, args, cores, rows)
    finally:
        if redis_server is not None:
            redis_server.stop()
    summary = summarise(rows)
    print(table(summary, args))
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"args": vars(args), "summary": summary, "runs": rows}, indent=1))
    log(f"results in {path}")
    if args.chart:
        chart(rows, args.chart)
    return 0
