"""
Draws docs/scale-out.png: the scale-out topology of docs/scale-out.md.

The ASCII picture in scale-out.md is the source of truth; this renders the
same boxes and arrows. Needs matplotlib (not a dependency of the receiver):
``python docs/scaleout.py`` from the repository root.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

GREY, ORANGE, GREEN, BLUE, RED = "#dddddd", "#f6d7a7", "#b7e4c7", "#a9d6e5", "#f4b6b6"

# name: (x, y, width, height, title, detail, colour)
BOXES = {
    "platform": (0.5, 8.2, 11.0, 0.9, "telephony platform", "WebSocket media streams · webhooks · answer_url", GREY),
    "haproxy": (
        0.5,
        6.5,
        11.0,
        1.0,
        "HAProxy  (deploy/haproxy.cfg)",
        ":8080 streams → receivers (leastconn, GET /readyz)   ·   :8081 webhooks + API → listeners (roundrobin, GET /healthz)",
        ORANGE,
    ),
    "r1": (
        0.5,
        4.3,
        5.2,
        1.5,
        "receiver 1  (receiver serve)",
        "stream port: session → media clock → sinks (WAV, bus)\nwebhook listener + call-record API",
        GREEN,
    ),
    "r2": (
        6.3,
        4.3,
        5.2,
        1.5,
        "receiver 2  (receiver serve)",
        "stream port: session → media clock → sinks (WAV, bus)\nwebhook listener + call-record API",
        GREEN,
    ),
    "redis": (
        0.5,
        2.1,
        5.2,
        1.5,
        "Redis  (the audio bus)",
        "{p}:streams  work queue, group 'workers'\n{p}:audio:<stream>  200 ms blocks, end · {p}:events",
        RED,
    ),
    "pg": (
        6.3,
        2.1,
        5.2,
        1.5,
        "PostgreSQL  (the call store)",
        "calls · events · streams · recordings · transcripts\nschema_version (receiver db upgrade)",
        BLUE,
    ),
    "w1": (0.5, 0.0, 2.5, 1.3, "worker 1", "[[sinks]] plugins\nXREADGROUP · XACK", GREEN),
    "w2": (3.2, 0.0, 2.5, 1.3, "worker 2", "takes over a dead\nworker's streams\n(XAUTOCLAIM)", GREEN),
}

ARROWS = [
    ("platform", "haproxy", "", 0.0),
    ("haproxy", "r1", "", 0.0),
    ("haproxy", "r2", "", 0.0),
    ("r1", "redis", "XADD (bounded, never waits)", 0.0),
    ("r2", "redis", "", 0.0),
    ("r1", "pg", "", 0.0),
    ("r2", "pg", "records, webhooks (stored once)", 0.0),
    ("redis", "w1", "", 0.0),
    ("redis", "w2", "", 0.0),
]


def centre(name: str, side: str) -> tuple[float, float]:
    x, y, w, h = BOXES[name][:4]
    return {
        "top": (x + w / 2, y + h),
        "bottom": (x + w / 2, y),
    }[side]


def main() -> None:
    fig, ax = plt.subplots(figsize=(12, 9.6))
    ax.set_xlim(0, 12)
    ax.set_ylim(-0.2, 9.3)
    ax.axis("off")
    for x, y, w, h, title, detail, colour in BOXES.values():
        ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.03", fc=colour, ec="#333333"))
        ax.text(x + w / 2, y + h - 0.22, title, ha="center", va="top", fontsize=11, weight="bold")
        ax.text(x + w / 2, y + h - 0.55, detail, ha="center", va="top", fontsize=8.5)
    for src, dst, label, _bend in ARROWS:
        start, end = centre(src, "bottom"), centre(dst, "top")
        ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=14, color="#333333", lw=1.2))
        if label:
            ax.text((start[0] + end[0]) / 2 + 0.1, (start[1] + end[1]) / 2, label, fontsize=8, style="italic")
    # Workers write transcripts into the store.
    for worker in ("w1", "w2"):
        x, y, w, h = BOXES[worker][:4]
        ax.add_patch(
            FancyArrowPatch(
                (x + w * 0.8, y + h), (8.9, 2.1), arrowstyle="-|>", mutation_scale=14, color="#2a6f97", lw=1.2,
                connectionstyle="arc3,rad=0.15",
            )
        )  # fmt: skip
    ax.text(
        7.2,
        0.7,
        "transcripts (stored once per\nstream, engine, track, span)",
        fontsize=8,
        style="italic",
        color="#2a6f97",
    )
    ax.text(7.2, 0.05, "one row per call, whichever host\ntook its stream or its webhooks", fontsize=8, color="#555555")
    ax.set_title("receiver scale-out: HAProxy, receivers, Redis Streams bus, worker pool, PostgreSQL", fontsize=12)
    out = Path(__file__).with_name("scale-out.png")
    fig.savefig(out, dpi=110, bbox_inches="tight")
    print(out)


if __name__ == "__main__":
    main()
