"""
The public API, pinned (as websockets' test_exports does), and the docs checked against the tree.

A name listed here is one users import: removing or moving it breaks them,
so this test must change, on purpose, with the CHANGELOG. The docs tests
catch module paths and links the README and docs/ still give after a move.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted([ROOT / "README.md", ROOT / "CONTRIBUTING.md", *(ROOT / "docs").glob("*.md")])

PUBLIC: dict[str, list[str]] = {
    "receiver.actions": [
        "ACCEPTED_BODY",
        "ERROR_BODY",
        "Action",
        "Hangup",
        "InvalidActions",
        "OtherAction",
        "Pause",
        "StartRecording",
        "StartStream",
        "StopRecording",
        "StopStream",
        "StreamSigner",
        "StreamTrack",
        "Verdict",
        "action",
        "check",
        "check_stream_url",
        "hangup",
        "parse_actions",
        "pause",
        "start_recording",
        "start_stream",
        "stop_recording",
        "stop_stream",
        "stream_actions",
        "to_payload",
    ],
    "receiver.auth": ["sign_stream_url", "stream_token", "verify_stream_token"],
    "receiver.sinks": ["AudioBlock", "Sink", "SinkFactory", "StreamInfo", "StreamOutcome"],
    "receiver.events": [
        "CallMetadata",
        "Connected",
        "DtmfReceived",
        "Encoding",
        "Event",
        "InterleavedMediaReceived",
        "MarkReceived",
        "MediaFormat",
        "MediaReceived",
        "Platform",
        "StreamStarted",
        "StreamStopped",
        "Track",
    ],
    "receiver.testing": ["MiniVoiceMessages", "RecordingSink", "TwilioMessages"],
    "receiver.transcription": ["Transcript", "Transcripts"],
}


@pytest.mark.parametrize("module_name", sorted(PUBLIC))
def test_public_names(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert sorted(module.__all__) == sorted(PUBLIC[module_name])
    for name in module.__all__:
        assert hasattr(module, name), f"{module_name}.{name} is in __all__ but missing"


def test_reexports_are_the_same_objects() -> None:
    from receiver import actions, auth
    from receiver.calls import actions as calls_actions
    from receiver.security import auth as security_auth

    for name in actions.__all__:
        assert getattr(actions, name) is getattr(calls_actions, name)
    for name in auth.__all__:
        assert getattr(auth, name) is getattr(security_auth, name)


def test_builtin_sink_entry_points_resolve() -> None:
    from importlib.metadata import entry_points

    from receiver.sinks import Sink

    found = {ep.name: ep.value for ep in entry_points(group="receiver.sinks")}
    assert found.get("wav") == "receiver.sinks.wav:WavSink"
    for name in ("wav", "pipe", "pocketsphinx", "vad"):
        cls = entry_points(group="receiver.sinks")[name].load()
        assert all(hasattr(cls, attr) for attr in ("open", "write", "close")), f"{name}: {cls} lacks the Sink shape"
    assert Sink is not None


# --- the docs against the tree -------------------------------------------------

# Logger names look like module paths; they are checked against the names the code logs under.
LOGGER_CONSTANTS = [
    ("receiver.logging", "STREAM"),
    ("receiver.logging", "MEDIA"),
    ("receiver.logging", "SERVER"),
    ("receiver.security.guard", "SECURITY"),
    ("receiver.transcription.transcript", "TRANSCRIPTS"),
    ("receiver.calls.webhooks", "WEBHOOKS_LOGGER"),
    ("receiver.calls.store", "STORE_LOGGER"),
    ("receiver.calls.answer", "ANSWER_LOGGER"),
]
NOT_MODULES = {"receiver.db"}  # the default call-record database file
DOTTED = re.compile(r"(?<![\w./-])receiver(?:\.[A-Za-z_]\w*)+")
PATH = re.compile(r"(?<![\w./-])(?:receiver|tests|bench|scripts|fuzz|examples)/[\w./-]*[\w/]")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _logger_names() -> set[str]:
    names = {"receiver.simulator"}
    for module_name, constant in LOGGER_CONSTANTS:
        names.add(getattr(importlib.import_module(module_name), constant))
    return names


def _resolves(dotted: str) -> bool:
    """``receiver.a.b.name``: the longest importable module prefix, then attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def _mentions(pattern: re.Pattern[str]) -> list[tuple[str, str]]:
    return [(doc.name, m.group(0)) for doc in DOCS for m in pattern.finditer(doc.read_text())]


def test_docs_exist() -> None:
    names = {p.name for p in (ROOT / "docs").glob("*.md")}
    assert {"architecture.md", "operations.md", "webhooks.md", "transcription.md", "security.md"} <= names
    assert {"simulator.md", "performance.md"} <= names


def test_module_paths_in_docs_exist() -> None:
    loggers = _logger_names()
    dotted = {
        (doc, name.rstrip(".")) for doc, name in _mentions(DOTTED) if name not in NOT_MODULES and name not in loggers
    }
    stale = sorted((doc, name) for doc, name in dotted if not _resolves(name))
    assert not stale, f"module paths in the docs that do not exist: {stale}"


def test_file_paths_in_docs_exist() -> None:
    stale = sorted({(doc, path) for doc, path in _mentions(PATH) if not (ROOT / path).exists()})
    assert not stale, f"file paths in the docs that do not exist: {stale}"


def test_relative_links_in_docs_exist() -> None:
    broken = []
    for doc in DOCS:
        text = doc.read_text()
        for target in LINK.findall(text):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            file = (doc.parent / path).resolve() if path else doc
            if not file.exists() or (anchor and file.suffix == ".md" and anchor not in _anchors(file.read_text())):
                broken.append((doc.name, target))
    assert not broken, f"broken links in the docs: {broken}"


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    anchors = set()
    in_code = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return anchors
