"""
Draws docs/dataflow.png: one media frame and one webhook through the receiver.

The diagram in architecture.md is the source of truth; this renders the same
boxes. Needs matplotlib (not a dependency of the receiver):
``python docs/dataflow.py`` from the repository root.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyBboxPatch  # noqa: E402

FRAME = [
    ("socket (stream port 8080)", "websockets handshake; /healthz, /readyz", "#dddddd"),
    ("stream/server.py", "sockets only; security/guard.py at the handshake;\nthe one error → close-code map", "#f6d7a7"),
    ("stream/fastpath.py", "final text frames straight from data_received", "#f6d7a7"),
    ("session.py + platforms/", "pure: JSON → one Event; lifecycle table", "#b7e4c7"),
    ("stream/pipeline.py", "one started stream", "#f6d7a7"),
    ("codecs → mediaclock → ringbuffer .py", "pure: decode; place by timestamp; int16 ring per track", "#b7e4c7"),
    ("stream/fanout.py", "a task and read cursor per sink; never blocks", "#f6d7a7"),
    ("sinks/  (WavSink, plugins, yours)", "open / write(AudioBlock) / close", "#a9d6e5"),
]
WEBHOOK = [
    ("HTTP POST /webhooks (port 8081)", "", "#dddddd"),
    ("calls/listener.py", "aiohttp: size, content type, JSON errors", "#f6d7a7"),
    ("calls/webhooks.py", "pure: authenticate, parse the envelope", "#b7e4c7"),
    ("calls/store.py", "the database on its own threads", "#f6d7a7"),
    ("calls/db.py", "SQLite (WAL): one record per call", "#f6d7a7"),
]
OBSERVER = ("calls/observer.py", "stream.started / stream.ended\n(via stream/observers.py)", "#f6d7a7")

BOX_W, BOX_H, STEP = 4.6, 0.78, 1.05


def box(ax: plt.Axes, x: float, y: float, title: str, note: str, color: str) -> None:
    ax.add_patch(
        FancyBboxPatch(
            (x - BOX_W / 2, y - BOX_H / 2), BOX_W, BOX_H, boxstyle="round,pad=0.03", fc=color, ec="#333333", lw=1
        )
    )
    ax.text(x, y + (0.14 if note else 0), title, ha="center", va="center", fontsize=9.5, weight="bold")
    if note:
        ax.text(x, y - 0.17, note, ha="center", va="center", fontsize=7.5, linespacing=1.0)


def arrow(ax: plt.Axes, x0: float, y0: float, x1: float, y1: float) -> None:
    ax.annotate("", xy=(x1, y1), xytext=(x0, y0), arrowprops={"arrowstyle": "->", "lw": 1.2, "color": "#333333"})


def column(ax: plt.Axes, x: float, steps: list[tuple[str, str, str]]) -> list[float]:
    ys = [-i * STEP for i in range(len(steps))]
    for (title, note, color), y in zip(steps, ys, strict=True):
        box(ax, x, y, title, note, color)
    for y0, y1 in zip(ys, ys[1:], strict=False):
        arrow(ax, x, y0 - BOX_H / 2, x, y1 + BOX_H / 2)
    return ys


def main() -> None:
    fig, ax = plt.subplots(figsize=(11, 9))
    ax.set_xlim(-3, 10.2)
    ax.set_ylim(-8.2, 1.0)
    ax.axis("off")
    ax.text(0, 0.75, "One media frame", ha="center", fontsize=12, weight="bold")
    ax.text(6.4, 0.75, "One webhook", ha="center", fontsize=12, weight="bold")
    column(ax, 0, FRAME)
    ys = column(ax, 6.4, WEBHOOK)
    # The stream side reaches the call record through the observer.
    oy = ys[-1] - 2 * STEP
    box(ax, 6.4, oy, *OBSERVER)
    # observer → store (the record is written through the store's threads), around the db box
    ax.annotate(
        "",
        xy=(6.4 + BOX_W / 2, ys[3]),
        xytext=(6.4 + BOX_W / 2, oy),
        arrowprops={"arrowstyle": "->", "lw": 1.2, "color": "#333333", "connectionstyle": "bar,fraction=0.12"},
    )
    # the server tells the observers when a stream starts and ends
    arrow(ax, BOX_W / 2, -STEP, 6.4 - BOX_W / 2, oy)
    ax.text(3.05, -3.2, "stream start / end", ha="center", fontsize=7.5, rotation=-70)
    legend = [("#b7e4c7", "pure core (no I/O)"), ("#f6d7a7", "I/O shell"), ("#a9d6e5", "public plugin API")]
    for i, (color, label) in enumerate(legend):
        ax.add_patch(FancyBboxPatch((-2.8 + 3.4 * i, -8.05), 0.35, 0.25, boxstyle="round,pad=0.02", fc=color, ec="#333"))
        ax.text(-2.35 + 3.4 * i, -7.93, label, va="center", fontsize=9)
    out = Path(__file__).with_name("dataflow.png")
    fig.savefig(out, dpi=110, bbox_inches="tight")
    print(out)


if __name__ == "__main__":
    main()
