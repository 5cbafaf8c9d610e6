"""
The built-in offline engine: pocketsphinx, with its US English model from the package.

Each track goes through the VAD; every utterance is then decoded whole (batch
cepstral normalisation, which is much more accurate on short telephone
utterances than pocketsphinx's live mode) in the engine's worker processes
(``engine.TrackDecoder``: pocketsphinx holds the GIL while it decodes).
Results are published in order per track, with start and end on the stream's
media clock:

- no ``keywords`` and no ``grammar``: one ``transcript`` event per utterance
  (the language model shipped in the package);
- ``keywords``: pocketsphinx's keyword-spotting search; one ``keyword`` event
  per detection, timed to the keyword itself;
- ``grammar``: a JSGF grammar file (phone menus); one event per utterance;
- ``decoder``: pocketsphinx settings passed through (beams, pruning: trade
  accuracy for speed, e.g. ``{ maxhmmpf = 3000, maxwpf = 10, pl_window = 5 }``).

A track whose decoding falls behind by more than ``max_pending`` utterances
drops the newest (counted). ``transcribe`` runs the same segmentation and
decoding on a whole signal, offline.
"""

from __future__ import annotations

import functools
import itertools
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from receiver.errors import InvalidValue
from receiver.events import Track
from receiver.logging import get_logger
from receiver.sinks import StreamInfo
from receiver.transcription.engine import EngineSettings, EngineSink, Job, StreamDecoders, on_clock
from receiver.transcription.transcript import TRANSCRIPTS
from receiver.transcription.vad import Segmenter, Utterance, VadOptions

RATE: Final = 16000
FRAME_SECONDS: Final = 0.01  # pocketsphinx's frame rate: 100 frames a second
DEFAULT_KWS_THRESHOLD: Final = 1e-20
MAX_SPELLINGS: Final = 16  # pronunciation combinations searched per keyword phrase

log = get_logger(TRANSCRIPTS)

# (mode, keyword searches ((spelling, threshold, phrase), ...), grammar path, extra decoder settings)
DecoderKey = tuple[str, tuple[tuple[str, float, str], ...], str | None, tuple[tuple[str, Any], ...]]
# Settings the plugin owns: a decoder option may not change them.
_RESERVED: Final = frozenset({"samprate", "kws", "keyphrase", "jsgf", "fsg", "lm", "hmm", "dict", "loglevel"})
# (start seconds, end seconds, text, kind), relative to the utterance
Result = tuple[float, float, str, str]


@functools.cache
def _dictionary() -> dict[str, tuple[str, ...]]:
    """Every word of the model's dictionary with the names of its pronunciations (``refund``, ``refund(2)``)."""
    from pocketsphinx import get_model_path

    words: dict[str, list[str]] = {}
    with open(os.path.join(get_model_path(), "en-us", "cmudict-en-us.dict"), encoding="utf-8") as f:
        for line in f:
            name = line.split(" ", 1)[0]
            words.setdefault(name.split("(", 1)[0], []).append(name)
    return {word: tuple(names) for word, names in words.items()}


def _spellings(words: Sequence[str], variants: bool) -> list[str]:
    """A phrase as the spotter's search must be given it: once per combination of its words' pronunciations.

    The keyword search follows one pronunciation per word, the first unless
    told otherwise: "refund" is R IH F AH N D (the verb, re-FUND), so the noun
    everyone says (REE-fund, ``refund(2)``) was never found.
    """
    if not variants:
        return [" ".join(words)]
    dictionary = _dictionary()
    return [" ".join(c) for c in itertools.islice(itertools.product(*(dictionary[w] for w in words)), MAX_SPELLINGS)]


@dataclass(frozen=True, slots=True)
class SphinxOptions:
    keywords: tuple[tuple[str, float], ...] = ()
    variants: bool = True  # search every pronunciation of a keyword's words, not only the first
    grammar: str | None = None
    workers: int = 0  # decoder processes (0: one per CPU)
    max_pending: int = 20
    vad: VadOptions = VadOptions()
    decoder: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def parse(
        cls,
        *,
        keywords: Sequence[str] | Mapping[str, float] = (),
        kws_threshold: float = DEFAULT_KWS_THRESHOLD,
        grammar: str | None = None,
        workers: int = 0,
        max_pending: int = 20,
        vad: Mapping[str, Any] | None = None,
        decoder: Mapping[str, Any] | None = None,
        variants: bool = True,
    ) -> SphinxOptions:
        if isinstance(keywords, str):
            raise InvalidValue("keywords must be a list of phrases (or a table phrase = threshold)")
        pairs = keywords.items() if isinstance(keywords, Mapping) else [(k, kws_threshold) for k in keywords]
        known = _dictionary()
        checked = []
        for phrase, threshold in pairs:
            words = str(phrase).lower().split()
            if not words:
                raise InvalidValue("a keyword is empty")
            missing = [w for w in words if w not in known]
            if missing:
                raise InvalidValue(f"keyword {phrase!r}: not in the pronunciation dictionary: {', '.join(missing)}")
            if not isinstance(threshold, int | float) or not 0 < threshold < 1:
                raise InvalidValue(f"keyword {phrase!r}: threshold must be between 0 and 1 (like 1e-20)")
            checked.append((" ".join(words), float(threshold)))
        if checked and grammar:
            raise InvalidValue("give keywords or a grammar, not both")
        if grammar is not None and not os.path.isfile(grammar):
            raise InvalidValue(f"grammar file {grammar!r} not found")
        if workers < 0 or max_pending < 1:
            raise InvalidValue("workers must be >= 0 and max_pending >= 1")
        if not isinstance(variants, bool):
            raise InvalidValue("variants must be true or false")
        extra = tuple(sorted((decoder or {}).items()))
        if extra:
            from pocketsphinx import Config

            reserved = _RESERVED.intersection(k for k, _v in extra)
            if reserved:
                raise InvalidValue(f"decoder settings the plugin owns: {', '.join(sorted(reserved))}")
            try:
                Config(loglevel="FATAL", **dict(extra))
            except (KeyError, ValueError, TypeError) as exc:
                raise InvalidValue(f"decoder: {exc}") from None
        return cls(
            tuple(checked),
            variants,
            os.path.abspath(grammar) if grammar else None,
            workers,
            max_pending,
            VadOptions(**(vad or {})),
            extra,
        )

    @property
    def key(self) -> DecoderKey:
        mode = "kws" if self.keywords else "jsgf" if self.grammar else "lm"
        searches = tuple(
            (spelling, threshold, phrase)
            for phrase, threshold in self.keywords
            for spelling in _spellings(phrase.split(), self.variants)
        )
        return (mode, searches, self.grammar, self.decoder)


# -- in the worker process -------------------------------------------------------

_decoders: dict[DecoderKey, Any] = {}


def _decoder(key: DecoderKey) -> Any:
    decoder = _decoders.get(key)
    if decoder is None:
        from pocketsphinx import Decoder

        mode, keywords, grammar, extra = key
        settings = dict(extra, samprate=RATE, loglevel="FATAL")
        if mode == "kws":
            with tempfile.NamedTemporaryFile("w", suffix=".kws", delete=False) as f:
                f.writelines(f"{spelling} /{threshold:g}/\n" for spelling, threshold, _phrase in keywords)
            try:
                decoder = Decoder(kws=f.name, **settings)
            finally:
                os.unlink(f.name)
        elif mode == "jsgf":
            decoder = Decoder(jsgf=grammar, **settings)
        else:
            decoder = Decoder(**settings)
        _decoders[key] = decoder
    return decoder


def decode(key: DecoderKey, pcm: bytes) -> list[Result]:
    """Decode one utterance (16 kHz int16 bytes) whole; times are seconds into the utterance."""
    decoder = _decoder(key)
    # The feature extraction keeps state from the last utterance (with batch CMN too): without a reset the
    # result depended on what this worker happened to decode before.
    decoder.reinit_feat()
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    segments = [(s.word.strip(), s.start_frame, s.end_frame) for s in (decoder.seg() or [])]
    if key[0] == "kws":
        phrases = {spelling: phrase for spelling, _threshold, phrase in key[1]}
        found: list[Result] = []
        for spelling, start, end in sorted(segments, key=lambda s: s[1]):
            phrase = phrases.get(spelling)
            if phrase is None:
                continue
            if any(
                p == phrase and start * FRAME_SECONDS <= e for _s, e, p, _k in found
            ):  # one occurrence, two spellings
                continue
            found.append((start * FRAME_SECONDS, (end + 1) * FRAME_SECONDS, phrase, "keyword"))
        return found
    hyp = decoder.hyp()
    text = hyp.hypstr.strip() if hyp is not None else ""
    if not text:
        return []
    words = [(s, e) for w, s, e in segments if w and not w.startswith(("<", "[", "++"))]
    start = words[0][0] * FRAME_SECONDS if words else 0.0
    end = (words[-1][1] + 1) * FRAME_SECONDS if words else len(pcm) / 2 / RATE
    return [(start, end, text, "transcript")]


# -- in the receiver -------------------------------------------------------------


def results_for(utterance: Utterance, results: list[Result]) -> list[Result]:
    """Put an utterance's results on the track's clock."""
    return [(*on_clock(utterance, start, end), text, kind) for start, end, text, kind in results]


def transcribe(samples: npt.NDArray[np.int16], options: SphinxOptions | None = None) -> list[Result]:
    """Offline: segment and decode a whole 16 kHz track in this process, as the plugin does live."""
    options = options or SphinxOptions()
    segmenter = Segmenter(RATE, options.vad)
    out: list[Result] = []
    for utterance in [*segmenter.push(samples), *segmenter.flush()]:
        out.extend(results_for(utterance, decode(options.key, utterance.samples.tobytes())))
    return out


class PocketsphinxSink(EngineSink):
    """The ``pocketsphinx`` plugin: each track's utterances, transcribed or keyword-spotted."""

    name = "pocketsphinx"
    sample_rate = RATE

    def __init__(self, **options: Any) -> None:
        self.options = SphinxOptions.parse(**options)
        super().__init__()

    def decoders(self, stream: StreamInfo) -> StreamDecoders:
        settings = EngineSettings("pocketsphinx", self.options.workers, self.options.max_pending, self.options.vad)
        key = self.options.key
        return StreamDecoders.open(
            stream,
            RATE,
            settings,
            call=lambda job: (decode, (key, job.utterance.samples.tobytes())),
            publish=self._publish,
            log=self._log,
        )

    def _publish(self, track: Track, job: Job, results: list[Result]) -> None:
        if self.transcripts is not None:
            for start, end, text, kind in results_for(job.utterance, results):
                self.transcripts.publish(track, start, end, text, kind=kind)
