"""The benchmark's smoke run: a few seconds, so ``bench/`` cannot rot. No timing is asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.messages import FORMATS, frames_per_tick

ROOT = Path(__file__).resolve().parent.parent


def test_bench_smoke_run_measures_receiver_baseline_and_latency(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"

    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    runs = {run["target"]: run for run in result["runs"]}
    assert set(runs) == {"receiver", "baseline", "receiver+latency"}
    for run in runs.values():
        expected_messages = result["args"]["calls"] * 2 * int(result["args"]["duration"] * 50)
        assert run["media_messages"] == expected_messages
        assert run["generator"]["close_codes"] == {"1000": result["args"]["calls"]}
        assert run["cpu_seconds"] >= 0
        assert run["peak_rss_mb"] > 0
    assert runs["receiver+latency"]["latency"]["frames"] > 0
    assert "ratio_to_baseline" in result["summary"]["receiver"]
    assert "| receiver |" in proc.stdout


def test_a_run_too_short_to_measure_cpu_time_is_reported_not_a_crash() -> None:
    """A smoke run's few hundred messages can take under one clock tick (10 ms): no calls per core."""
    import argparse

    from bench.run import summarise, table

    run = {
        "target": "receiver", "cpu_us_per_msg": 0.0, "user_us_per_msg": 0.0, "sys_us_per_msg": 0.0,
        "msgs_per_s": 160.0, "calls_per_core": None, "peak_rss_mb": 50.0, "mb_per_call": 0.1,
        "rss_slope_mb_per_min": 0.0, "fell_behind": False,
        "generator": {"lateness_ms": {"p99": 0.5}, "generator_cpu_us_per_msg": 10.0},
    }  # fmt: skip
    measured = {**run, "cpu_us_per_msg": 20.0, "calls_per_core": 500.0}

    args = argparse.Namespace(mode="realtime", calls=4, format="vonage", generator="python", duration=1, repeat=2)
    assert "| receiver | 0.00 |  | 160 | - |" in table(summarise([run]), args)
    assert summarise([run, measured])["receiver"]["calls_per_core"] == 500.0


# What shared/bench/loadgen.js printed for a 10-call Twilio run (its --json line).
NODE_REPORT = {
    "mode": "realtime", "format": "twilio", "url": "ws://127.0.0.1:43925/twilio", "calls": 10, "tracks": 2,
    "media_msgs": 2000, "errors": 0, "elapsed_s": 2.051, "msgs_per_s": 975,
    "close_ack_ms": {"n": 10, "p50": 25.16, "p99": 25.93, "max": 25.93}, "loadgen_cpu_s": 0.258,
    "loadgen_cpu_us_per_msg": 129.02, "duration_s": 2, "send_span_s": 2.02,
    "send_lag_ms": {"n": 2000, "p50": 1.2, "p99": 21.2, "max": 31.21}, "send_lag_max_per_s": [31.21, 24.52],
    "ping_rtt_ms": {"n": 10, "p50": 9.96, "p99": 14, "max": 14}, "ping_rtt_max_per_s": [None, 14],
    "backlog_bytes_per_s": [0, 0], "loadgen_cpu_share": 0.13,
}  # fmt: skip


def test_the_node_generators_report_reads_as_the_python_generators() -> None:
    from bench.run import _node_result

    result = _node_result(NODE_REPORT)

    assert result["media_messages"] == 2000
    assert result["drain_seconds"] == pytest.approx(0.02593)
    assert result["drain_error"] is None
    assert result["close_codes"] == {"1000": 10}
    assert result["lateness_ms"]["p99"] == 21.2
    assert result["ping_rtt_ms"] == {"first_quarter_p50": 0.0, "last_quarter_p50": 14}
    failed = _node_result({**NODE_REPORT, "errors": 2})
    assert failed["drain_error"] and failed["close_codes"] == {"error": 2}


def test_the_in_process_hot_path_takes_every_message() -> None:
    for fmt in ("minivoice", "twilio"):
        proc = subprocess.run(
            [sys.executable, "-m", "bench.hotpath", "--format", fmt, "--streams", "2", "--ticks", "2"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )

        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "8 media messages" in proc.stderr


@pytest.mark.parametrize("fmt", sorted(set(FORMATS) - {"minivoice"}))
def test_the_python_generator_and_the_baseline_speak_every_other_format(tmp_path: Path, fmt: str) -> None:
    """Each format end to end: the receiver takes every stream (its close 1000, not 4400 for a
    format it refuses), and so does the baseline (1011 if it failed on a message)."""
    out = tmp_path / "bench.json"

    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--format", fmt, "--calls", "3", "--duration", "0.5", "--repeat", "1",
         "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    assert proc.returncode == 0, proc.stderr[-2000:]
    runs = {run["target"]: run for run in json.loads(out.read_text())["runs"]}
    assert set(runs) == {"receiver", "baseline"}
    for run in runs.values():
        assert run["media_messages"] == 3 * frames_per_tick(fmt) * 25
        assert run["generator"]["close_codes"] == {"1000": 3}


def test_the_matrix_runs_every_cell_it_is_given_and_draws_it(tmp_path: Path) -> None:
    """``bench.matrix``: one ``bench`` invocation per cell, the table, the JSON and the picture.

    The Node generator's cell runs where ``shared/bench/loadgen.js`` and ``ws``
    (``tests/js``) are at hand, as beside the development checkout.
    """
    from bench.run import loadgen_js

    cells = ["python:twilio:realtime"]
    node_modules = ROOT / "tests" / "js" / "node_modules"
    try:
        loadgen_js()
        if (node_modules / "ws").is_dir():
            cells.append("node:minivoice:flood")
    except RuntimeError:
        pass
    out, picture = tmp_path / "matrix.json", tmp_path / "matrix.png"

    proc = subprocess.run(
        [sys.executable, "-m", "bench.matrix", "--smoke", "--cells", ",".join(cells), "--json", str(out),
         "--chart", str(picture), "--node-modules", str(node_modules)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip

    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert [f"{c['generator']}:{c['format']}:{c['mode']}" for c in result["cells"]] == cells
    for cell in result["cells"]:
        assert set(cell["summary"]) == {"receiver", "baseline"}
        assert cell["summary"]["receiver"]["ratio_to_baseline"] > 0
    rows = [line for line in proc.stdout.splitlines() if line.startswith(("| python", "| node"))]
    assert len(rows) == len(cells)
    assert picture.read_bytes().startswith(b"\x89PNG")


def test_a_finished_runs_files_are_emptied_at_once_and_deleted_when_the_bench_ends(tmp_path: Path) -> None:
    """A run's recordings are not deleted between runs: on ext4 without a journal, deleting
    them made the next receiver run pay for its file creation (bench/run.py ``_retire``)."""
    from bench import run

    done = tmp_path / "bench-x"
    wav = done / "recordings" / "call_1" / "a.inbound.wav"
    wav.parent.mkdir(parents=True)
    wav.write_bytes(b"RIFF" + bytes(10_000))
    inode = wav.stat().st_ino
    spent = list(run._SPENT)
    run._SPENT.clear()
    try:
        run._retire(done)

        assert wav.stat().st_size == 0 and wav.stat().st_ino == inode  # emptied, not deleted
        run._remove_spent()
        assert not done.exists() and run._SPENT == []
    finally:
        run._SPENT[:] = spent


def test_the_paired_run_measures_two_receivers_under_the_same_load(tmp_path: Path) -> None:
    out = tmp_path / "paired.json"

    proc = subprocess.run(
        [sys.executable, "-m", "bench.paired", "--b", str(ROOT), "--env-b", "RECEIVER_READ_PACING_MS=0",
         "--format", "vonage", "--calls", "4", "--warm", "0.2", "--seconds", "1", "--repeat", "1",
         "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    assert proc.returncode == 0, proc.stderr[-2000:]
    [run] = json.loads(out.read_text())["runs"]
    assert run["a_ms"] > 0 and run["b_ms"] > 0  # both receivers took the load for the whole window
    assert run["ratio"] == pytest.approx(run["b_ms"] / run["a_ms"])
    assert "B/A median" in proc.stdout


def test_the_paired_run_refuses_a_directory_without_a_receiver(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.paired", "--b", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert proc.returncode == 2 and "holds no receiver/" in proc.stderr
