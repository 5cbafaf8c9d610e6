"""
A call's transcript written out: the dialogue (text), JSON lines, and captions (SubRip and WebVTT).

Captions hold final ``transcript`` events only (no partial results, keywords
or VAD segments), one cue per event, or several when an event with word
times would not fit in two lines of ``LINE_CHARS`` (the speaker's name
included, as SubRip writes it); the speaker (caller, agent) starts each cue, as a WebVTT
voice span in WebVTT. Times are the media clock's, from the stream's start.

Pure: no I/O, no asyncio, no logging.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterable, Sequence
from typing import Final

import orjson

from receiver.errors import InvalidValue
from receiver.transcription.transcript import SPEAKERS, Transcript, format_dialogue

FORMATS: Final = ("text", "jsonl", "srt", "vtt")
LINE_CHARS: Final = 42  # the usual caption line
CUE_CHARS: Final = 2 * LINE_CHARS
MIN_CUE_SECONDS: Final = 0.1

Cue = tuple[float, float, str, str]  # start, end, speaker, text


def engines(events: Iterable[Transcript]) -> list[str]:
    """The engines whose final transcripts are among ``events``."""
    return sorted({e.engine for e in events if e.kind == "transcript" and e.final})


def cues(events: Iterable[Transcript]) -> list[Cue]:
    """The caption cues of final transcripts, in order of start."""
    out: list[Cue] = []
    for e in events:
        if e.kind != "transcript" or not e.final or not e.text.strip():
            continue
        speaker = SPEAKERS.get(e.track, e.track)
        text = " ".join(e.text.split())
        if not e.words or _fits(speaker, text):
            out.append((e.start, e.end, speaker, text))
            continue
        chunk: list[tuple[float, float, str]] = []
        for word in e.words:
            if chunk and not _fits(speaker, " ".join(w for _s, _e, w in [*chunk, word])):
                out.append((chunk[0][0], chunk[-1][1], speaker, " ".join(w for _s, _e, w in chunk)))
                chunk = []
            chunk.append(word)
        if chunk:
            out.append((chunk[0][0], chunk[-1][1], speaker, " ".join(w for _s, _e, w in chunk)))
    return sorted(out, key=lambda c: (c[0], c[1]))


def _fits(speaker: str, text: str) -> bool:
    """Whether a cue holds ``text`` in two lines of ``LINE_CHARS``, the speaker's name before it (as SubRip has it).

    Counted as wrapped, not in characters: 84 characters can need three lines.
    """
    return len(textwrap.wrap(f"{speaker}: {text}", LINE_CHARS)) <= 2


def _clock(seconds: float, separator: str) -> str:
    ms = max(0, round(seconds * 1000))
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{ms:03d}"


def _lines(text: str) -> str:
    return "\n".join(textwrap.wrap(text.replace("-->", "->"), LINE_CHARS)) or " "


def _times(start: float, end: float, separator: str) -> str:
    return f"{_clock(start, separator)} --> {_clock(max(end, start + MIN_CUE_SECONDS), separator)}"


def format_srt(events: Sequence[Transcript]) -> str:
    blocks = [
        f"{n}\n{_times(start, end, ',')}\n{_lines(f'{speaker}: {text}')}\n"
        for n, (start, end, speaker, text) in enumerate(cues(events), start=1)
    ]
    return "\n".join(blocks)


def _escape_vtt(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def format_vtt(events: Sequence[Transcript]) -> str:
    blocks = ["WEBVTT\n"]
    blocks += [
        f"{_times(start, end, '.')}\n<v {_escape_vtt(speaker)}>{_escape_vtt(_lines(text))}\n"
        for start, end, speaker, text in cues(events)
    ]
    return "\n".join(blocks)


def format_jsonl(events: Sequence[Transcript], *, partial: bool = False) -> str:
    return "".join(orjson.dumps(e.as_dict()).decode() + "\n" for e in events if e.final or partial)


def formatter(name: str, *, partial: bool = False) -> Callable[[Sequence[Transcript]], str]:
    """The function writing ``name`` (one of ``FORMATS``)."""
    match name:
        case "text":
            return lambda events: format_dialogue(events, partial=partial)
        case "jsonl":
            return lambda events: format_jsonl(events, partial=partial)
        case "srt":
            return format_srt
        case "vtt":
            return format_vtt
    raise InvalidValue(f"unknown transcript format {name!r} (one of {', '.join(FORMATS)})")
