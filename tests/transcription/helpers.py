"""Helpers for the transcription tests: speech from espeak-ng, and a fast MiniVoice client."""

from __future__ import annotations

import io
import subprocess
import wave
from pathlib import Path
from typing import Any

import numpy as np
from websockets.asyncio.client import connect

from receiver.codecs import decode_ulaw, encode_ulaw
from receiver.testing import MiniVoiceMessages
from receiver.transcription.audio import convert
from tests.prereq import needs_program

FRAME = 160  # 20 ms at 8 kHz

needs_espeak = needs_program("espeak-ng")


def speak(
    text: str, *, rate: int = 8000, voice: str = "en-us", speed: int = 175
) -> np.ndarray[Any, np.dtype[np.int16]]:
    """``text`` spoken by espeak-ng, as int16 at ``rate``."""
    out = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(speed), "--stdout", text], capture_output=True, check=True
    ).stdout
    with wave.open(io.BytesIO(out)) as w:
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
        source_rate = w.getframerate()
    return convert(samples, source_rate, rate)


def save_wav(path: Path, samples: np.ndarray[Any, np.dtype[np.int16]], rate: int) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype("<i2").tobytes())


def telephone(samples: np.ndarray[Any, np.dtype[np.int16]]) -> np.ndarray[Any, np.dtype[np.int16]]:
    """What 8 kHz mu-law leaves of a signal (the bytes the stream carries, decoded)."""
    return decode_ulaw(encode_ulaw(samples))


async def stream_call(
    port: int,
    inbound: np.ndarray[Any, np.dtype[np.int16]],
    outbound: np.ndarray[Any, np.dtype[np.int16]] | None = None,
    *,
    call_id: str = "call_test",
    stream_id: str = "str_test",
) -> None:
    """Stream a call at 8 kHz mu-law as fast as possible (20 ms frames, both tracks), then stop."""
    msgs = MiniVoiceMessages(stream_id=stream_id, call_id=call_id)
    tracks = ("inbound",) if outbound is None else ("inbound", "outbound")
    n = max(len(inbound), 0 if outbound is None else len(outbound))
    n = -(-n // FRAME) * FRAME
    audio = {"inbound": np.pad(inbound, (0, n - len(inbound)))}
    if outbound is not None:
        audio["outbound"] = np.pad(outbound, (0, n - len(outbound)))
    async with connect(f"ws://127.0.0.1:{port}/stream") as ws:
        await ws.send(msgs.connected())
        await ws.send(msgs.start(tracks=tracks))
        for chunk, offset in enumerate(range(0, n, FRAME), start=1):
            for track in tracks:
                await ws.send(msgs.media(track, chunk, offset // 8, encode_ulaw(audio[track][offset : offset + FRAME])))
        await ws.send(msgs.stop())
        await ws.wait_closed()
