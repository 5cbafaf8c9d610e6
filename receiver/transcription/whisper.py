"""
The ``whisper`` plugin: OpenAI's Whisper models on faster-whisper (CTranslate2, int8 on the CPU).

An optional extra (``pip install 'receiver[whisper]'``): the default install
never imports faster-whisper. Each track goes through the same VAD as the
built-in engine; every utterance is decoded whole in the engine's worker
processes (``engine.TrackDecoder``), each holding its own copy of the model.
Results are published in order per track on the stream's media clock:

- one ``transcript`` event per Whisper segment, with its words and their
  times (``words``: ``[start, end, word]``);
- with ``keywords``, one ``keyword`` event per occurrence of a phrase in the
  recognised words (``keywords.find``), timed to those words;
- with ``partials``, the utterance being spoken re-decoded every
  ``partial_seconds`` (greedy, no word times: cheaper), as ``final: false``
  events; only while the track has no utterance waiting.

``model`` is a faster-whisper model name (``tiny.en``, ``base``, ``small``, ...;
downloaded from its hub on first use and cached in ``download_root``, or in
the Hugging Face cache, ``HF_HOME``) or a local directory holding a converted
model (``model.bin``, ``config.json``, the tokenizer and vocabulary).
Each utterance is decoded on its own: ``condition_on_previous_text`` is off,
so one misheard utterance cannot derail the next. ``initial_prompt`` and
``hotwords`` steer the decoder towards a domain's words.
"""

from __future__ import annotations

import concurrent.futures
import functools
import importlib.util
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

import numpy as np
import numpy.typing as npt

from receiver.errors import InvalidValue
from receiver.events import Track
from receiver.logging import Logger, get_logger
from receiver.sinks import StreamInfo
from receiver.transcription import keywords as kw
from receiver.transcription.engine import EngineSettings, EngineSink, Job, StreamDecoders, on_clock, worker_pool
from receiver.transcription.transcript import TRANSCRIPTS
from receiver.transcription.vad import Segmenter, Utterance, VadOptions

RATE: Final = 16000
ENGINE: Final = "whisper"
TOKENS_PER_SECOND: Final = 8  # fast speech is 4-5 words a second, a word 1.3 tokens on average
MAX_TOKENS: Final = 224  # half of Whisper's 448-token window: the other half is for the prompt
INSTALL_HINT: Final = "the whisper plugin needs faster-whisper: pip install 'receiver[whisper]'"

log = get_logger(TRANSCRIPTS)

# (model name or directory, compute type, threads per worker, download root)
ModelKey: TypeAlias = tuple[str, str, int, str | None]
# (model, the decoder's settings as sorted (name, value) pairs)
DecodeKey: TypeAlias = tuple[ModelKey, tuple[tuple[str, Any], ...]]
# (start, end, text, words), seconds relative to the utterance (words: (start, end, word))
Segment: TypeAlias = tuple[float, float, str, tuple[kw.Word, ...]]


@functools.cache
def _faster_whisper() -> tuple[frozenset[str], frozenset[str]]:
    """The model names faster-whisper knows and the compute types CTranslate2 has on this CPU (imported once)."""
    if importlib.util.find_spec("faster_whisper") is None:
        raise InvalidValue(INSTALL_HINT)
    import ctranslate2
    from faster_whisper.utils import available_models

    return frozenset(available_models()), frozenset(ctranslate2.get_supported_compute_types("cpu"))


def _is_hub_id(model: str) -> bool:
    """``owner/name``, as the model hub spells a repository."""
    parts = model.split("/")
    return len(parts) == 2 and all(parts) and not model.startswith((".", "~"))


@dataclass(frozen=True, slots=True)
class WhisperOptions:
    model: str = "base"
    compute_type: str = "int8"
    language: str | None = "en"
    beam_size: int = 5
    cpu_threads: int = 1
    download_root: str | None = None
    initial_prompt: str | None = None
    hotwords: str | None = None
    keywords: tuple[tuple[str, ...], ...] = ()
    engine: EngineSettings = EngineSettings(ENGINE)

    @classmethod
    def parse(
        cls,
        *,
        model: str = "base",
        compute_type: str = "int8",
        language: str | None = "en",
        beam_size: int = 5,
        workers: int = 0,
        cpu_threads: int = 1,
        download_root: str | None = None,
        vad: Mapping[str, Any] | None = None,
        max_pending: int = 20,
        initial_prompt: str | None = None,
        hotwords: str | Sequence[str] | None = None,
        keywords: Sequence[str] = (),
        partials: bool = False,
        partial_seconds: float = 1.0,
    ) -> WhisperOptions:
        """Check the options as config.toml gives them.

        Raises:
            InvalidValue: A bad value, a model directory that is not there, or faster-whisper not installed.
        """
        names, compute_types = _faster_whisper()
        if not isinstance(model, str) or not model:
            raise InvalidValue("model must be a model name (like base or tiny.en) or a model directory")
        if os.path.isdir(os.path.expanduser(model)):
            model = os.path.abspath(os.path.expanduser(model))
            if not os.path.isfile(os.path.join(model, "model.bin")):
                raise InvalidValue(f"model directory {model!r} has no model.bin (a faster-whisper model)")
        elif model not in names and not _is_hub_id(model):
            raise InvalidValue(
                f"model {model!r}: not a directory, nor one of the names {', '.join(sorted(names))}, "
                "nor an owner/name of the model hub"
            )
        if compute_type not in compute_types:
            raise InvalidValue(f"compute_type {compute_type!r}: this CPU has {', '.join(sorted(compute_types))}")
        if language in ("", "auto"):
            language = None
        if language is not None and (not isinstance(language, str) or not 2 <= len(language) <= 3):
            raise InvalidValue("language must be a language code like en, or auto")
        if not isinstance(beam_size, int) or not 1 <= beam_size <= 20:
            raise InvalidValue("beam_size must be 1-20")
        if not isinstance(cpu_threads, int) or not 1 <= cpu_threads <= 64:
            raise InvalidValue("cpu_threads must be 1-64")
        if not isinstance(partials, bool):
            raise InvalidValue("partials must be true or false")
        if not isinstance(partial_seconds, int | float) or not 0.2 <= partial_seconds <= 30:
            raise InvalidValue("partial_seconds must be 0.2-30")
        if hotwords is not None and not isinstance(hotwords, str):
            hotwords = " ".join(str(h) for h in hotwords)
        return cls(
            model=model,
            compute_type=compute_type,
            language=language,
            beam_size=beam_size,
            cpu_threads=cpu_threads,
            download_root=download_root,
            initial_prompt=initial_prompt or None,
            hotwords=hotwords or None,
            keywords=kw.parse_phrases(keywords),
            engine=EngineSettings(
                ENGINE, workers, max_pending, VadOptions(**(vad or {})), float(partial_seconds) if partials else 0.0
            ),
        )

    @property
    def model_key(self) -> ModelKey:
        return (self.model, self.compute_type, self.cpu_threads, self.download_root)

    @property
    def key(self) -> DecodeKey:
        settings = {
            "language": self.language,
            "beam_size": self.beam_size,
            "initial_prompt": self.initial_prompt,
            "hotwords": self.hotwords,
        }
        return (self.model_key, tuple(sorted(settings.items())))


# -- in the worker process -------------------------------------------------------

_models: dict[ModelKey, Any] = {}


def _model(key: ModelKey) -> Any:
    model = _models.get(key)
    if model is None:
        from faster_whisper import WhisperModel

        name, compute_type, threads, root = key
        model = _models[key] = WhisperModel(
            name, device="cpu", compute_type=compute_type, cpu_threads=threads, num_workers=1, download_root=root
        )
    return model


def load(key: ModelKey) -> None:
    """Load (and on first use, download) a model in this worker, so the first utterance does not wait."""
    _model(key)


def decode(key: DecodeKey, pcm: bytes, final: bool = True) -> list[Segment]:
    """Decode one utterance (16 kHz int16 bytes) whole; times are seconds into the utterance.

    A partial result (``final=False``) is decoded greedily and without word times.
    """
    model = _model(key[0])
    settings = dict(key[1])
    if not final:
        settings["beam_size"] = 1
    audio = np.frombuffer(pcm, dtype=np.int16).astype(np.float32) / np.float32(32768.0)
    # No more tokens than speech that long can hold: on noise or a tone the decoder can repeat itself
    # ("hmm hmm hmm ...") up to its limit at every fallback temperature, a minute of CPU for a second of audio.
    tokens = min(MAX_TOKENS, int(len(audio) / RATE * TOKENS_PER_SECOND) + 8)
    segments, _info = model.transcribe(
        audio,
        vad_filter=False,
        condition_on_previous_text=False,
        word_timestamps=final,
        max_new_tokens=tokens,
        **settings,
    )
    out: list[Segment] = []
    for segment in segments:
        text = segment.text.strip()
        if not text:
            continue
        words = tuple((float(w.start), float(w.end), w.word.strip()) for w in segment.words or () if w.word.strip())
        start = words[0][0] if words else float(segment.start)
        end = words[-1][1] if words else float(segment.end)
        out.append((start, end, text, words))
    return out


# -- in the receiver -------------------------------------------------------------


def segments_for(utterance: Utterance, segments: list[Segment]) -> list[Segment]:
    """Put an utterance's segments (and their words) on the track's clock."""
    out = []
    for start, end, text, words in segments:
        placed = tuple((*on_clock(utterance, ws, we), word) for ws, we, word in words)
        out.append((*on_clock(utterance, start, end), text, placed))
    return out


def find_keywords(options: WhisperOptions, segments: list[Segment]) -> list[tuple[float, float, str]]:
    """The keyword phrases in an utterance's words (across its segments)."""
    return kw.find(options.keywords, [w for segment in segments for w in segment[3]]) if options.keywords else []


def transcribe(
    samples: npt.NDArray[np.int16], options: WhisperOptions
) -> tuple[list[Segment], list[tuple[float, float, str]]]:
    """Offline: segment and decode a whole 16 kHz track in this process, as the plugin does live.

    Returns the segments and the keywords found, on the track's clock.
    """
    segmenter = Segmenter(RATE, options.engine.vad)
    segments: list[Segment] = []
    found: list[tuple[float, float, str]] = []
    for utterance in [*segmenter.push(samples), *segmenter.flush()]:
        placed = segments_for(utterance, decode(options.key, utterance.samples.tobytes()))
        segments.extend(placed)
        found.extend(find_keywords(options, placed))
    return segments, found


_warmed: set[ModelKey] = set()


class WhisperSink(EngineSink):
    """The ``whisper`` plugin: each track's utterances transcribed by a Whisper model."""

    name = ENGINE
    sample_rate = RATE

    def __init__(self, **options: Any) -> None:
        self.options = WhisperOptions.parse(**options)
        super().__init__()

    def decoders(self, stream: StreamInfo) -> StreamDecoders:
        self._warm()
        key = self.options.key
        return StreamDecoders.open(
            stream,
            RATE,
            self.options.engine,
            call=lambda job: (decode, (key, job.utterance.samples.tobytes(), job.final)),
            publish=self._publish,
            log=self._log,
        )

    def _warm(self) -> None:
        """Load the model in every worker once per process; a model that cannot load is logged now, by name."""
        key = self.options.model_key
        if key in _warmed:
            return
        _warmed.add(key)
        workers = self.options.engine.workers or os.cpu_count() or 1
        pool = worker_pool(ENGINE, workers)
        for _ in range(workers):  # best effort: an idle worker takes each
            pool.submit(load, key).add_done_callback(functools.partial(_loaded, self._log, key))

    def _publish(self, track: Track, job: Job, segments: list[Segment]) -> None:
        if self.transcripts is None or not segments:
            return
        placed = segments_for(job.utterance, segments)
        if not job.final:
            u = job.utterance
            text = " ".join(text for _s, _e, text, _w in placed)
            self.transcripts.publish(track, u.start_seconds, u.end_seconds, text, final=False)
            return
        for start, end, text, words in placed:
            self.transcripts.publish(track, start, end, text, words=words)
        for start, end, phrase in find_keywords(self.options, placed):
            self.transcripts.publish(track, start, end, phrase, kind="keyword")


def _loaded(log: Logger, key: ModelKey, future: concurrent.futures.Future[None]) -> None:
    if future.cancelled():
        return
    exc = future.exception()
    if exc is not None:
        _warmed.discard(key)
        log.error("engine_model_failed", model=key[0], error=repr(exc)[:300])
