"""Fixtures for the console tests: a real ``receiver serve`` with transcription, calls from the
simulator, and headless Chromium (Debian's package) driven by Playwright."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ..serve_process import ReceiverProcess
from ..transcription.helpers import save_wav, speak

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]
SECRET = "console-s3cret"
ENGINE = Path(__file__).parent / "engine.py"
CALLER = "I would like to cancel my order please"
AGENT = "thank you for calling how can I help you today"
KEYWORD = "cancel my order"
CALL_SECONDS = 7


def require(ok: bool, reason: str) -> None:
    """Skip when a prerequisite is missing; in CI (``RECEIVER_CI``) fail instead."""
    if not ok:
        if os.environ.get("RECEIVER_CI"):
            pytest.fail(f"{reason} (RECEIVER_CI is set: CI must have it)")
        pytest.skip(reason)


@pytest.fixture(scope="module")  # not longer: Playwright's sync API holds the thread's event loop while it runs
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless (never a downloaded browser)."""
    require(Path(CHROMIUM).exists(), f"{CHROMIUM} is not installed (scripts/system-packages.txt: chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require(False, "playwright is not installed (pip install -e .[test])")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def voices(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A caller and an agent taking turns (each speaks while the other is quiet), as WAV files."""
    require(shutil.which("espeak-ng") is not None, "espeak-ng is not installed (scripts/system-packages.txt)")
    folder = tmp_path_factory.mktemp("voices")
    caller, agent = speak(CALLER), speak(AGENT)
    pause = np.zeros(4000, dtype=np.int16)
    turn = max(len(caller), len(agent)) + len(pause)
    inbound = np.concatenate([caller, np.zeros(2 * turn - len(caller), dtype=np.int16)])
    outbound = np.concatenate([np.zeros(turn, dtype=np.int16), agent, np.zeros(turn - len(agent), dtype=np.int16)])
    save_wav(folder / "caller.wav", inbound, 8000)
    save_wav(folder / "agent.wav", outbound, 8000)
    return folder / "caller.wav", folder / "agent.wav"


def config(workdir: Path) -> Path:
    """The receiver's settings: a webhook secret, and a transcription engine on each track (``pipe``)."""

    def engine(name: str, track: str, text: str, *extra: str) -> str:
        command = [sys.executable, str(ENGINE), "{track}", "{rate}", "--text", text, *extra]
        quoted = ", ".join(f'"{arg}"' for arg in command)
        return (
            f'[[sinks]]\nplugin = "pipe"\nname = "{name}"\ntracks = ["{track}"]\n'
            f"options = {{ command = [{quoted}], sample_rate = 8000 }}\n"
        )

    path = workdir / "config.toml"
    path.write_text(
        f'webhook_secret = "{SECRET}"\n'
        + engine("caller-words", "inbound", CALLER, "--keyword", KEYWORD)
        + engine("agent-words", "outbound", AGENT)
    )
    return path


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReceiverProcess]:
    workdir = tmp_path_factory.mktemp("console")
    with ReceiverProcess(workdir, "--config", str(config(workdir)), "--database", str(workdir / "calls.db")) as proc:
        proc.api = int(proc.wait_for("webhooks_started")["port"])
        yield proc


def simulate(
    receiver: ReceiverProcess, voices: tuple[Path, Path], *, seconds: int = CALL_SECONDS
) -> subprocess.Popen[bytes]:
    """One call from the simulator in real time: a stream of both tracks (2 % of frames lost, so the
    waveform has gaps to mark), then hangup and its webhook."""
    flow = receiver.workdir / "flow.json"
    actions = [
        {"type": "start_stream", "stream_url": f"ws://127.0.0.1:{receiver.port}/minivoice", "track": "both"},
        {"type": "pause", "length": seconds},
        {"type": "hangup"},
    ]
    flow.write_text(json.dumps({"actions": actions}))
    api = receiver.api
    return subprocess.Popen(
        [sys.executable, "-m", "receiver", "simulate", str(flow), "--allow-insecure", "--json",
         "--inbound-audio", str(voices[0]), "--outbound-audio", str(voices[1]), "--loss", "0.02", "--seed", "11",
         "--webhook-url", f"http://127.0.0.1:{api}/webhooks/{SECRET}"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def screenshot(page: Any, name: str, tmp_path: Path) -> Path:
    """A full-page screenshot: into $RECEIVER_SCREENSHOTS (docs/img for the docs) when set, else tmp_path."""
    folder = Path(os.environ.get("RECEIVER_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"console-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
