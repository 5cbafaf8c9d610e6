"""
The performance matrix in one command: every generator, every wire format it speaks, real time and flood.

    .venv/bin/python -m bench.matrix                       # the whole matrix, one run per cell
    .venv/bin/python -m bench.matrix --compare DIR         # also the receiver from DIR/receiver, in every cell
    .venv/bin/python -m bench.matrix --capacity 900        # also 900 real-time calls on one core, receiver alone
    .venv/bin/python -m bench.matrix --cells python:minivoice:realtime --smoke

Each cell is one ``python -m bench`` invocation (receiver and baseline interleaved
in it, so a cell's ratio is from one sitting); the cells run one after another.
The load average at each cell's start goes in its row: on a shared machine it
says which rows to trust. Prints a Markdown table (docs/performance.md's
matrix), writes every cell's summary to ``--json``, and with ``--chart`` draws
the ratios as a picture, with the 0.65 goal marked.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import run as bench_run
from bench.messages import FORMATS

ROOT = Path(__file__).resolve().parent.parent

# generator, format, mode: every format each generator speaks (loadgen.js: minivoice and twilio only),
# in real time and in a flood.
NODE_FORMATS = ("minivoice", "twilio")
CELLS = tuple(
    [("python", fmt, "realtime") for fmt in FORMATS]
    + [("node", fmt, "realtime") for fmt in NODE_FORMATS]
    + [("python", fmt, "flood") for fmt in FORMATS]
    + [("node", fmt, "flood") for fmt in NODE_FORMATS]
)
GOAL = 0.65


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def run_cell(
    generator: str, fmt: str, mode: str, args: argparse.Namespace, out: Path, *, calls: int | None = None
) -> dict[str, Any]:
    """One ``python -m bench`` invocation; its summary with the load average it started under."""
    flood = mode == "flood"
    n = calls or (args.flood_calls if flood else args.calls)
    seconds = args.flood_duration if flood else args.duration
    if args.smoke:
        n, seconds = min(n, 10), 2.0
    argv = [
        "--generator", generator, "--format", fmt, "--mode", mode,
        "--calls", str(n), "--duration", str(seconds),
        "--repeat", str(args.repeat), "--json", str(out),
        "--node-modules", args.node_modules,
    ]  # fmt: skip
    if calls is not None:
        argv.append("--no-baseline")
    for d in args.compare:
        argv += ["--compare", d]
    load = os.getloadavg()[0]
    started = time.monotonic()
    with contextlib.redirect_stdout(io.StringIO()):  # bench's own table; ours is printed at the end
        code = bench_run.main(argv)
    if code:
        raise SystemExit(f"bench {' '.join(argv)}: exit {code}")
    summary: dict[str, Any] = json.loads(out.read_text())["summary"]
    return {
        "generator": generator,
        "format": fmt,
        "mode": mode,
        "calls": n,
        "load_average": round(load, 1),
        "seconds": round(time.monotonic() - started, 1),
        "summary": summary,
    }


def _compare_label(summary: dict[str, Any]) -> str | None:
    return next((label for label in summary if label.startswith("receiver@")), None)


def _fmt(summary: dict[str, Any] | None, key: str) -> str:
    return "" if summary is None else f"{summary[key]:.2f}"


def table(cells: list[dict[str, Any]]) -> str:
    lines = [
        "| generator | format | mode | load avg | receiver µs/msg | baseline µs/msg | ratio | receiver before µs/msg | ratio before "
        "| MB per call | receiver msgs/s | fell behind |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for cell in cells:
        s = cell["summary"]
        rec, base = s.get("receiver", {}), s.get("baseline")
        before_label = _compare_label(s)
        before = s.get(before_label) if before_label else None
        if base is None:
            continue
        lines.append(
            f"| {cell['generator']} | {cell['format']} | {cell['mode']} | {cell['load_average']} "
            f"| {rec['cpu_us_per_msg']:.2f} | {base['cpu_us_per_msg']:.2f} | **{rec['ratio_to_baseline']:.2f}** "
            f"| {_fmt(before, 'cpu_us_per_msg')} | {_fmt(before, 'ratio_to_baseline')} "
            f"| {rec['mb_per_call']:.3f} | {rec['msgs_per_s']:,.0f} | {'yes' if rec['fell_behind'] else 'no'} |"
        )
    return "\n".join(lines)


def capacity_line(cell: dict[str, Any]) -> str:
    rec = cell["summary"]["receiver"]
    core = cell["calls"] / rec["calls_per_core"] if rec["calls_per_core"] else float("nan")
    return (
        f"capacity: {cell['calls']} real-time two-track calls ({cell['generator']}, {cell['format']}, load avg "
        f"{cell['load_average']}): {rec['cpu_us_per_msg']:.2f} µs/msg, {core:.0%} of one core, "
        f"{'-' if rec['calls_per_core'] is None else format(rec['calls_per_core'], '.0f')} calls per core, fell behind: {'yes' if rec['fell_behind'] else 'no'}"
    )


def chart(cells: list[dict[str, Any]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [c for c in cells if "baseline" in c["summary"]]
    names = [f"{c['generator']}\n{c['format']}\n{c['mode']}" for c in rows]
    ratios = [c["summary"]["receiver"]["ratio_to_baseline"] for c in rows]
    before = []
    for c in rows:
        label = _compare_label(c["summary"])
        before.append(c["summary"][label]["ratio_to_baseline"] if label else None)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(rows)), 3.8))
    xs = range(len(rows))
    width = 0.38 if any(b is not None for b in before) else 0.6
    if any(b is not None for b in before):
        ax.bar([x - width / 2 for x in xs], [b or 0 for b in before], width, color="#bbbbbb", label="receiver before")
        ax.bar([x + width / 2 for x in xs], ratios, width, color="#2b7bba", label="receiver now")
    else:
        ax.bar(list(xs), ratios, width, color="#2b7bba", label="receiver")
    ax.axhline(1.0, color="#444444", linewidth=1, label="bare baseline")
    ax.axhline(GOAL, color="#d62728", linestyle="--", linewidth=1, label=f"goal {GOAL}")
    for x, r in zip(xs, ratios, strict=True):
        ax.text(
            x + (width / 2 if any(b is not None for b in before) else 0), r + 0.02, f"{r:.2f}", ha="center", fontsize=8
        )
    ax.set_xticks(list(xs), names, fontsize=8)
    ax.set_ylabel("CPU per message / baseline's")
    ax.set_title(f"receiver vs bare websockets receiver, {datetime.now(UTC):%Y-%m-%d}", fontsize=10)
    ax.legend(fontsize=7, loc="upper right")
    ax.set_ylim(0, max([1.2, *ratios, *(b or 0 for b in before)]) + 0.1)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.matrix", description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200, help="real-time calls per cell")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per real-time run")
    parser.add_argument("--flood-calls", type=int, default=50)
    parser.add_argument("--flood-duration", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=1, help="runs per target in each cell")
    parser.add_argument("--compare", action="append", default=[], metavar="DIR", help="as python -m bench --compare")
    parser.add_argument(
        "--capacity", type=int, default=0, metavar="CALLS", help="also CALLS real-time calls, receiver alone"
    )
    parser.add_argument("--cells", help="comma-separated generator:format:mode cells (default: all)")
    parser.add_argument("--node-modules", default=os.environ.get("NODE_PATH", "/tmp/lg/node_modules"))
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "matrix.json"))
    parser.add_argument("--chart", help="write the ratios as a PNG here (needs matplotlib)")
    parser.add_argument("--smoke", action="store_true", help="10 calls, 2 s per cell")
    args = parser.parse_args(argv)
    cells = CELLS
    if args.cells:
        known = {":".join(c): c for c in CELLS}
        for name in args.cells.split(","):
            if name not in known:
                parser.error(f"unknown cell {name}: one of {', '.join(known)}")
        cells = tuple(known[name] for name in args.cells.split(","))
    out_dir = Path(args.json).parent
    out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for i, (generator, fmt, mode) in enumerate(cells, 1):
        _log(f"matrix {i}/{len(cells)}: {generator} generator, {fmt}, {mode}")
        results.append(run_cell(generator, fmt, mode, args, out_dir / f"matrix-{generator}-{fmt}-{mode}.json"))
        rec = results[-1]["summary"]["receiver"]
        _log(
            f"matrix {i}/{len(cells)}: ratio {rec.get('ratio_to_baseline') or float('nan'):.2f} ({results[-1]['seconds']} s)"
        )
    capacity = None
    if args.capacity:
        _log(f"matrix: capacity, {args.capacity} real-time calls, receiver alone")
        capacity = run_cell(
            "python", "minivoice", "realtime", args, out_dir / "matrix-capacity.json", calls=args.capacity
        )
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, {args.repeat} run(s) per target per cell")
    print(table(results))
    if capacity is not None:
        print(capacity_line(capacity))
    Path(args.json).write_text(json.dumps({"args": vars(args), "cells": results, "capacity": capacity}, indent=1))
    if args.chart:
        chart(results, args.chart)
        _log(f"chart: {args.chart}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
