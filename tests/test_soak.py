"""A shortened soak (the full one: ``make soak``): random faults, then nothing leaked."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path

import uvloop

SOAK = Path(__file__).resolve().parents[1] / "scripts" / "soak.py"


def _load():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("receiver_soak", SOAK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_short_soak_with_random_faults_leaks_nothing(tmp_path: Path) -> None:
    """Runs once, on uvloop (the production loop): a soak is too slow to run twice."""
    soak = _load()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        report = runner.run(
            soak.soak(seconds=3.0, clients=8, seed=7, directory=tmp_path, timeouts=1.0, warmup_streams=10)
        )

    assert report.ok, report.leaked
    assert report.streams >= 10 and report.faults >= 5
    # (Client-side errors are possible here: timeouts this short can catch a slow honest client.)
    assert (report.fds_after, report.tasks_after) == (report.fds_before, report.tasks_before)
    # Every kind of fault was injected and answered as it should be.
    assert set(report.scenarios) == set(soak.SCENARIOS)
    assert {"1000", "4400", "4408", "4409", "1009"} <= set(report.client_close_codes)
    # The attacks were met by their limits (the server's counts: a client on a busy machine may time out first).
    counts = report.server_counts
    assert counts["rejected_media_ahead_of_clock"] and counts["limit_rate"]
    assert counts["refused_too_many_unauthenticated_from_client"]
    assert not any(report.budgets_after.values())
