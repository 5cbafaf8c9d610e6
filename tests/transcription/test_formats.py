"""A call's transcript as text, JSON lines and captions (``receiver transcript --format``)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from receiver import cli
from receiver.transcription.formats import CUE_CHARS, cues, format_srt, format_vtt
from receiver.transcription.transcript import Transcript, transcript_path

LONG = (
    "I have been waiting on hold for a very long time and nobody has told me "
    "what happened to the package I ordered three weeks ago"
)


def _events() -> list[Transcript]:
    words = tuple((10.0 + 0.25 * i, 10.2 + 0.25 * i, w) for i, w in enumerate(LONG.split()))
    return [
        Transcript("c", "s", "outbound", 0.5, 2.25, "How can I help?", engine="whisper"),
        Transcript("c", "s", "inbound", 3.0, 4.5, "I want a <refund> & more", engine="whisper"),
        Transcript("c", "s", "inbound", 3.5, 4.0, "refund", engine="whisper", kind="keyword"),
        Transcript("c", "s", "inbound", 5.0, 5.0, "Hm.", engine="whisper"),
        Transcript("c", "s", "inbound", 6.0, 7.0, "I want", final=False, engine="whisper"),
        Transcript("c", "s", "inbound", 6.0, 7.0, "", engine="vad", kind="speech"),
        Transcript("c", "s", "inbound", 10.0, words[-1][1], LONG, engine="whisper", words=words),
    ]


def _timed(text: str) -> Transcript:
    words = tuple((0.25 * i, 0.25 * i + 0.2, w) for i, w in enumerate(text.split()))
    return Transcript("c", "s", "inbound", 0.0, words[-1][1], text, engine="whisper", words=words)


def test_srt_has_numbered_cues_of_final_transcripts_with_the_speaker() -> None:
    srt = format_srt(_events())

    assert srt.startswith(
        "1\n00:00:00,500 --> 00:00:02,250\nagent: How can I help?\n\n"
        "2\n00:00:03,000 --> 00:00:04,500\ncaller: I want a <refund> & more\n\n"
        "3\n00:00:05,000 --> 00:00:05,100\ncaller: Hm.\n\n"
        "4\n00:00:10,000 --> "
    )
    assert "refund\n" not in srt.replace("<refund>", "") and "I want\n" not in srt


def test_vtt_escapes_text_and_names_voices() -> None:
    vtt = format_vtt(_events())

    assert vtt.startswith("WEBVTT\n\n00:00:00.500 --> 00:00:02.250\n<v agent>How can I help?\n\n")
    assert "<v caller>I want a &lt;refund&gt; &amp; more\n" in vtt


def test_a_long_transcript_with_word_times_is_split_into_cues_at_its_words() -> None:
    long = [c for c in cues(_events()) if c[0] >= 10.0]

    assert len(long) == 2
    assert " ".join(text for _s, _e, _speaker, text in long) == LONG
    assert all(len(text) <= CUE_CHARS for _s, _e, _speaker, text in long)
    # Two lines each at most, as wrapped, the speaker's name included (84 characters can need three).
    srt_cues = format_srt(_events()).split("\n\n")
    assert all(len(cue.strip().splitlines()) <= 4 for cue in srt_cues)  # number, times, two lines
    assert all(len(cue.splitlines()) <= 4 for cue in format_vtt(_events()).split("\n\n")[1:])
    over = "fine thanks & you I am calling about the refund for the order I placed last week and"
    assert len(over) == CUE_CHARS and len(format_vtt([_timed(over)]).split("\n\n")) == 3  # header and two cues
    assert long[0][1] <= long[1][0]  # the second cue starts at its first word


def test_the_command_writes_each_format_and_refuses_captions_mixing_engines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = transcript_path(tmp_path, "c")
    path.parent.mkdir(parents=True)
    other = Transcript("c", "s", "inbound", 3.0, 4.5, "I want a refund", engine="pocketsphinx")
    path.write_bytes(b"".join(orjson.dumps(e.as_dict()) + b"\n" for e in [*_events(), other]))
    run = ["transcript", "c", "--recordings-dir", str(tmp_path)]

    assert cli.main([*run, "--format", "srt"]) == 2
    assert "choose one with --engine" in capsys.readouterr().err
    assert cli.main([*run, "--format", "vtt", "--engine", "whisper"]) == 0
    assert capsys.readouterr().out == format_vtt(_events())
    assert cli.main([*run, "--format", "jsonl", "--engine", "whisper"]) == 0
    lines = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(e["start"], e["kind"]) for e in lines] == [
        (0.5, "transcript"),
        (3.0, "transcript"),
        (3.5, "keyword"),
        (5.0, "transcript"),
        (10.0, "transcript"),
    ]
    assert lines[-1]["words"][0] == [10.0, 10.2, "I"]
    assert cli.main([*run, "--format", "jsonl", "--partial", "--engine", "whisper"]) == 0
    assert '"final":false' in capsys.readouterr().out
    assert cli.main([*run, "--engine", "pocketsphinx"]) == 0
    assert capsys.readouterr().out.strip().endswith("caller: I want a refund  (pocketsphinx)")
