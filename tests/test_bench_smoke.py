"""The benchmark's smoke run: a few seconds, so ``bench/`` cannot rot. No timing is asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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
