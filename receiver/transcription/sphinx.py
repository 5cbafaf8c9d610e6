"""
The built-in offline engine: pocketsphinx, with its US English model from the package.

Each track goes through the VAD (``vad.Segmenter``); every utterance is then
decoded whole (batch cepstral normalisation, which is much more accurate on
short telephone utterances than pocketsphinx's live mode) in a pool of worker
processes: pocketsphinx holds the GIL while it decodes, so a thread would
stall the event loop, and processes use every core. Results are published in
order per track, with start and end on the stream's media clock:

- no ``keywords`` and no ``grammar``: one ``transcript`` event per utterance
  (the language model shipped in the package);
- ``keywords``: pocketsphinx's keyword-spotting search; one ``keyword`` event
  per detection, timed to the keyword itself;
- ``grammar``: a JSGF grammar file (phone menus); one event per utterance;
- ``decoder``: pocketsphinx settings passed through (beams, pruning: trade
  accuracy for speed, e.g. ``{ maxhmmpf = 3000, maxwpf = 10, pl_window = 5 }``).

A track whose decoding falls behind by more than ``max_pending`` utterances
drops the newest (counted), so memory stays bounded. ``transcribe`` runs the
same segmentation and decoding on a whole signal, offline.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import functools
import multiprocessing
import os
import signal
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from receiver.errors import InvalidValue
from receiver.logging import Logger, get_logger
from receiver.sinks import AudioBlock, StreamInfo, StreamOutcome
from receiver.transcription.transcript import TRANSCRIPTS, Transcripts
from receiver.transcription.vad import Segmenter, Utterance, VadOptions

RATE: Final = 16000
FRAME_SECONDS: Final = 0.01  # pocketsphinx's frame rate: 100 frames a second
DEFAULT_KWS_THRESHOLD: Final = 1e-20

log = get_logger(TRANSCRIPTS)

# (mode, keywords ((phrase, threshold), ...), grammar path, extra decoder settings)
DecoderKey = tuple[str, tuple[tuple[str, float], ...], str | None, tuple[tuple[str, Any], ...]]
# Settings the plugin owns: a decoder option may not change them.
_RESERVED: Final = frozenset({"samprate", "kws", "keyphrase", "jsgf", "fsg", "lm", "hmm", "dict", "loglevel"})
# (start seconds, end seconds, text, kind), relative to the utterance
Result = tuple[float, float, str, str]


@functools.cache
def _dictionary() -> frozenset[str]:
    from pocketsphinx import get_model_path

    words = set()
    with open(os.path.join(get_model_path(), "en-us", "cmudict-en-us.dict"), encoding="utf-8") as f:
        for line in f:
            word = line.split(" ", 1)[0]
            words.add(word.split("(", 1)[0])
    return frozenset(words)


@dataclass(frozen=True, slots=True)
class SphinxOptions:
    keywords: tuple[tuple[str, float], ...] = ()
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
            os.path.abspath(grammar) if grammar else None,
            workers,
            max_pending,
            VadOptions(**(vad or {})),
            extra,
        )

    @property
    def key(self) -> DecoderKey:
        mode = "kws" if self.keywords else "jsgf" if self.grammar else "lm"
        return (mode, self.keywords, self.grammar, self.decoder)


# -- in the worker process -------------------------------------------------------


def _worker_init() -> None:
    """Die with the receiver: a killed receiver must not leave decoders behind (Linux)."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


_decoders: dict[DecoderKey, Any] = {}


def _decoder(key: DecoderKey) -> Any:
    decoder = _decoders.get(key)
    if decoder is None:
        from pocketsphinx import Decoder

        mode, keywords, grammar, extra = key
        settings = dict(extra, samprate=RATE, loglevel="FATAL")
        if mode == "kws":
            with tempfile.NamedTemporaryFile("w", suffix=".kws", delete=False) as f:
                f.writelines(f"{phrase} /{threshold:g}/\n" for phrase, threshold in keywords)
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
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    segments = [(s.word.strip(), s.start_frame, s.end_frame) for s in (decoder.seg() or [])]
    if key[0] == "kws":
        return [
            (start * FRAME_SECONDS, (end + 1) * FRAME_SECONDS, word, "keyword") for word, start, end in segments if word
        ]
    hyp = decoder.hyp()
    text = hyp.hypstr.strip() if hyp is not None else ""
    if not text:
        return []
    words = [(s, e) for w, s, e in segments if w and not w.startswith(("<", "[", "++"))]
    start = words[0][0] * FRAME_SECONDS if words else 0.0
    end = (words[-1][1] + 1) * FRAME_SECONDS if words else len(pcm) / 2 / RATE
    return [(start, end, text, "transcript")]


# -- in the receiver -------------------------------------------------------------

_pool: concurrent.futures.ProcessPoolExecutor | None = None


def decoder_pool(workers: int = 0) -> concurrent.futures.ProcessPoolExecutor:
    """The process-wide pool of decoder processes (started on first use; a broken one is replaced)."""
    global _pool
    if _pool is None or getattr(_pool, "_broken", False):
        count = workers or os.cpu_count() or 1
        # spawn: never fork a process that runs an event loop and threads.
        _pool = concurrent.futures.ProcessPoolExecutor(
            count, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_init
        )
        atexit.register(shutdown_decoders)
    return _pool


def shutdown_decoders() -> None:
    """Stop the decoder processes (at exit; the next use starts new ones)."""
    global _pool
    pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)


def results_for(utterance: Utterance, results: list[Result]) -> list[Result]:
    """Put an utterance's results on the track's clock."""
    base = utterance.start_seconds
    return [(base + start, min(base + end, utterance.end_seconds), text, kind) for start, end, text, kind in results]


def transcribe(samples: npt.NDArray[np.int16], options: SphinxOptions | None = None) -> list[Result]:
    """Offline: segment and decode a whole 16 kHz track in this process, as the plugin does live."""
    options = options or SphinxOptions()
    segmenter = Segmenter(RATE, options.vad)
    out: list[Result] = []
    for utterance in [*segmenter.push(samples), *segmenter.flush()]:
        out.extend(results_for(utterance, decode(options.key, utterance.samples.tobytes())))
    return out


class _Track:
    __slots__ = ("decoded", "dropped", "failed", "queue", "segmenter", "task", "track")

    def __init__(self, track: Any, options: SphinxOptions) -> None:
        self.track = track
        self.segmenter = Segmenter(RATE, options.vad)
        self.queue: asyncio.Queue[Utterance | None] = asyncio.Queue(options.max_pending)
        self.task: asyncio.Task[None] | None = None
        self.decoded = 0
        self.dropped = 0
        self.failed = 0


class PocketsphinxSink:
    """The ``pocketsphinx`` plugin: each track's utterances, transcribed or keyword-spotted."""

    name = "pocketsphinx"
    interval = 0.2
    sample_rate = RATE
    sample_format = "int16"

    def __init__(self, **options: Any) -> None:
        self.options = SphinxOptions.parse(**options)
        self.transcripts: Transcripts | None = None
        self._tracks: list[_Track] = []
        self._decode_seconds = 0.0
        self._log: Logger = log

    async def open(self, stream: StreamInfo) -> None:
        engine = self.transcripts.engine if self.transcripts is not None else self.name  # the name config.toml gave it
        self._log = log.bind(stream_id=stream.stream_id, call_id=stream.call_id, engine=engine)
        self._tracks = [_Track(track, self.options) for track in stream.tracks]
        loop = asyncio.get_running_loop()
        for state in self._tracks:
            state.task = loop.create_task(
                self._decode_track(state), name=f"pocketsphinx:{stream.stream_id}:{state.track}"
            )

    async def write(self, block: AudioBlock) -> None:
        for state in self._tracks:
            self._queue(state, state.segmenter.push(block.channels[state.track]))

    async def close(self, outcome: StreamOutcome) -> None:
        for state in self._tracks:
            self._queue(state, state.segmenter.flush())
            await state.queue.put(None)
        try:
            await asyncio.gather(*(s.task for s in self._tracks if s.task is not None))
        finally:
            for state in self._tracks:
                if state.task is not None and not state.task.done():
                    state.task.cancel()
        self._log.info(
            "engine_summary",
            utterances={str(s.track): s.decoded for s in self._tracks},
            dropped={str(s.track): s.dropped for s in self._tracks},
            failed={str(s.track): s.failed for s in self._tracks},
            decode_seconds=round(self._decode_seconds, 3),
        )

    def _queue(self, state: _Track, utterances: list[Utterance]) -> None:
        for utterance in utterances:
            try:
                state.queue.put_nowait(utterance)
            except asyncio.QueueFull:
                state.dropped += 1
                if state.dropped == 1:
                    self._log.warning("engine_behind", track=str(state.track), max_pending=self.options.max_pending)

    async def _decode_track(self, state: _Track) -> None:
        loop = asyncio.get_running_loop()
        key = self.options.key
        while (utterance := await state.queue.get()) is not None:
            started = time.monotonic()
            pcm = utterance.samples.tobytes()
            try:
                results = await loop.run_in_executor(decoder_pool(self.options.workers), decode, key, pcm)
            except concurrent.futures.BrokenExecutor:
                # A worker died (killed, out of memory): a new pool serves the next utterance.
                self._log.error("engine_worker_died", track=str(state.track))
                continue
            except Exception as exc:  # the decoder failed on this utterance: count it, go on with the next
                state.failed += 1
                if state.failed == 1:
                    self._log.error("engine_decode_failed", track=str(state.track), error=repr(exc)[:200])
                continue
            self._decode_seconds += time.monotonic() - started
            state.decoded += 1
            if self.transcripts is not None:
                for start, end, text, kind in results_for(utterance, results):
                    self.transcripts.publish(state.track, start, end, text, kind=kind)
