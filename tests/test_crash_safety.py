"""Crash safety: SIGKILL while 20 streams record; an unwritable or full recordings directory."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import signal
import subprocess
import wave
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from structlog.testing import capture_logs
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from receiver.app import ReceiverServer, default_sinks
from receiver.codecs import decode_ulaw
from receiver.config import Settings
from receiver.sinks.wav import repair_directory, repair_wav
from receiver.testing import MiniVoiceMessages, RecordingSink

from .serve_process import ReceiverProcess

STREAMS = 20
RATE = 8000
FRAME = 160  # samples (and mu-law bytes) per 20 ms frame
BATCH = 5  # frames a client sends at once: 100 ms of audio


def payload(stream: int, track: int, chunk: int) -> bytes:
    """The mu-law bytes of one frame: deterministic, so the test knows every sample."""
    return random.Random(stream * 1_000_003 + track * 1_000_000_007 + chunk).randbytes(FRAME)


def expected(stream: int, track: int, frames: int) -> np.ndarray:
    return np.concatenate([decode_ulaw(payload(stream, track, c)) for c in range(1, frames + 1)])


def read_wav(path: Path) -> tuple[int, np.ndarray]:
    with wave.open(str(path), "rb") as wav:
        assert (wav.getsampwidth(), wav.getframerate()) == (2, RATE)
        channels = wav.getnchannels()
        data = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    return channels, data.reshape(-1, channels)


def check_prefix(directory: Path, stream: int, sent_frames: int) -> int:
    """Every file of ``stream`` holds exactly the audio sent, from the start; return its length in samples."""
    lengths = set()
    for track, name in enumerate(("inbound", "outbound")):
        channels, data = read_wav(directory / f"str_{stream}.{name}.wav")
        n = len(data)
        assert channels == 1 and n <= sent_frames * FRAME
        assert np.array_equal(data[:, 0], expected(stream, track, sent_frames)[:n])
        lengths.add(n)
    channels, stereo = read_wav(directory / f"str_{stream}.stereo.wav")
    n = len(stereo)
    assert channels == 2
    assert np.array_equal(stereo[:, 0], expected(stream, 0, sent_frames)[:n])
    assert np.array_equal(stereo[:, 1], expected(stream, 1, sent_frames)[:n])
    lengths.add(n)
    return min(lengths)


def header_samples(path: Path) -> int:
    try:
        with wave.open(str(path), "rb") as wav:
            return wav.getnframes()
    except (OSError, EOFError, wave.Error):
        return 0


async def _stream(port: int, index: int, sent: list[int], stop: asyncio.Event, recorded: asyncio.Event) -> None:
    """Stream until ``stop``; set ``recorded`` once every stream has sent 3 s."""
    messages = MiniVoiceMessages(stream_id=f"str_{index}", call_id=f"call_{index}")
    ws: ClientConnection
    with contextlib.suppress(ConnectionClosed, OSError):
        async with connect(f"ws://127.0.0.1:{port}/mv") as ws:
            await ws.send(messages.connected())
            await ws.send(messages.start())
            loop = asyncio.get_running_loop()
            began = loop.time()
            chunk = 0
            while not stop.is_set():
                for _ in range(BATCH):
                    chunk += 1
                    for track, name in enumerate(("inbound", "outbound")):
                        await ws.send(messages.media(name, chunk, 20 * (chunk - 1), payload(index, track, chunk)))
                sent[index] = chunk
                if min(sent) >= 150:
                    recorded.set()
                # Real-time pacing: the audio, not the test, sets the pace.
                await asyncio.sleep(max(0.0, began + chunk * 0.02 - loop.time()))


def test_sigkill_while_20_streams_record_leaves_readable_wavs_and_start_up_repairs_them(tmp_path: Path) -> None:
    server = ReceiverProcess(tmp_path)
    sent = [0] * STREAMS

    async def run() -> dict[int, int]:
        stop, recorded = asyncio.Event(), asyncio.Event()
        clients = [asyncio.create_task(_stream(server.port, i, sent, stop, recorded)) for i in range(STREAMS)]
        await asyncio.to_thread(server.wait_for, "stream_started", STREAMS, 60)
        # Let every stream record a few seconds, then note how far each was sent ...
        await asyncio.wait_for(recorded.wait(), 60)
        mark = list(sent)
        # ... and wait (while they keep streaming) until every header covers that,
        # less one second: the WAV sink refreshes headers at least once a second.
        files = [
            tmp_path / "recordings" / f"call_{i}" / f"str_{i}.{t}.wav"
            for i in range(STREAMS)
            for t in ("inbound", "outbound", "stereo")
        ]
        for _ in range(600):  # another process writes the files: nothing to wait on but them
            seen = {i: min(header_samples(f) for f in files[3 * i : 3 * i + 3]) for i in range(STREAMS)}
            if all(seen[i] >= (mark[i] - 50) * FRAME for i in range(STREAMS)):
                break
            await asyncio.sleep(0.05)
        server.proc.send_signal(signal.SIGKILL)
        killed_at = list(sent)
        stop.set()
        await asyncio.gather(*clients)
        assert all(seen[i] >= (mark[i] - 50) * FRAME for i in range(STREAMS)), "headers never caught up"
        return {i: killed_at[i] for i in range(STREAMS)} | {-1 - i: seen[i] for i in range(STREAMS)}

    try:
        result = asyncio.run(run())
        assert server.wait() == -signal.SIGKILL
    finally:
        server.kill()

    lags = []
    for i in range(STREAMS):
        directory = tmp_path / "recordings" / f"call_{i}"
        readable = check_prefix(directory, i, sent[i])
        assert readable >= result[-1 - i]  # at least what the headers showed before the kill
        lags.append((result[i] * FRAME - readable) / RATE)
        if shutil.which("soxi"):
            for name in ("inbound", "outbound", "stereo"):
                out = subprocess.run(
                    ["soxi", "-s", str(directory / f"str_{i}.{name}.wav")], capture_output=True, text=True
                )
                assert out.returncode == 0, out.stderr
                assert int(out.stdout) >= readable
    print(f"readable audio lagged what was sent at the kill by {min(lags):.2f}-{max(lags):.2f} s")

    # Start-up repair: the next receiver fixes every header; files keep every whole sample written.
    # How many need it depends on whether the killed receiver wrote after its last header
    # refresh (a starved one may not have): a copy repaired here says how many.
    shutil.copytree(tmp_path / "recordings", tmp_path / "copy")
    unfinished = len(repair_directory(tmp_path / "copy"))
    with ReceiverProcess(tmp_path) as again:
        if unfinished:
            assert again.wait_for("recordings_repaired")["count"] == unfinished
        else:
            again.wait_for("server_started")
            assert not [e for e in again.events if e.get("event") == "recordings_repaired"]
    for i in range(STREAMS):
        directory = tmp_path / "recordings" / f"call_{i}"
        length = check_prefix(directory, i, sent[i])
        assert length >= result[-1 - i]
        for name in ("inbound", "outbound", "stereo"):
            assert not repair_wav(directory / f"str_{i}.{name}.wav")


# -- a recordings directory that cannot be written ---------------------------------


@contextlib.contextmanager
def _mounted(directory: Path, *options: str) -> Iterator[bool]:
    """Mount over ``directory`` (root only); yield whether it worked."""
    directory.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or not shutil.which("mount"):
        yield False
        return
    done = subprocess.run(["mount", *options, str(directory)], capture_output=True)
    try:
        yield done.returncode == 0
    finally:
        if done.returncode == 0:
            subprocess.run(["umount", "-l", str(directory)], capture_output=True)


def _unwritable(recordings: Path) -> Callable[[], None]:
    """Without a read-only mount: permissions, or (root ignores those) a file in the directory's place."""
    if os.geteuid() == 0:
        recordings.rmdir()
        recordings.write_text("a file where the directory should be")
        return lambda: None
    recordings.chmod(0o500)
    return lambda: recordings.chmod(0o700)


def _link_to_dev_full(recordings: Path) -> None:
    # The sink creates files exclusively (never through a link), so the call's directory is the link.
    (recordings / "call_test").symlink_to("/dev/full")


async def _one_stream(
    settings: Settings, frames: int = 100
) -> tuple[RecordingSink, list[dict[str, object]], ReceiverServer]:
    recording = RecordingSink()
    with capture_logs() as logs:
        async with ReceiverServer(settings, sinks=[*default_sinks(settings), lambda info: recording]) as server:
            async with connect(f"ws://127.0.0.1:{server.port}/mv") as ws:
                messages = MiniVoiceMessages()
                await ws.send(messages.connected())
                await ws.send(messages.start())
                for chunk in range(1, frames + 1):
                    for track, name in enumerate(("inbound", "outbound")):
                        await ws.send(messages.media(name, chunk, 20 * (chunk - 1), payload(0, track, chunk)))
                await ws.send(messages.stop())
                await asyncio.wait_for(ws.wait_closed(), 10)
                assert ws.close_code == 1000
            while not server.outcomes:
                server.stream_ended.clear()
                await server.stream_ended.wait()
    return recording, logs, server


def _assert_wav_disabled_once(
    recording: RecordingSink, logs: list[dict[str, object]], server: ReceiverServer, frames: int
) -> None:
    failures = [e for e in logs if e["event"] == "sink_failed"]
    assert len(failures) == 1 and failures[0]["sink"] == "wav" and failures[0]["log_level"] == "error"
    outcome = server.outcomes[0]
    assert outcome.disabled_sinks == ("wav",) and outcome.reason == "stop_stream"
    # The stream and the other sink went on.
    assert recording.outcome is not None and recording.outcome.samples == frames * FRAME
    from receiver.events import Track

    assert np.array_equal(recording.audio(Track.INBOUND), expected(0, 0, frames))


async def test_read_only_recordings_dir_disables_the_wav_sink_with_one_error(
    settings: Settings, tmp_path: Path
) -> None:
    recordings = Path(settings.recordings_dir)
    with _mounted(recordings, "--bind", "-o", "ro", str(recordings)) as mounted:
        restore = None if mounted else _unwritable(recordings)
        recording, logs, server = await _one_stream(settings)
        if restore is not None:
            restore()

    _assert_wav_disabled_once(recording, logs, server, 100)


async def test_full_disk_disables_the_wav_sink_with_one_error(settings: Settings) -> None:
    # The disk really fills: no free-space floor (it would refuse the stream at once), and the
    # 6 s are sent at once (faster than real time, which max_media_lead_seconds would close).
    settings = settings.replace(min_free_disk_bytes=0, max_media_lead_seconds=0)
    recordings = Path(settings.recordings_dir)
    frames = 300  # 6 s: 96 KB a track file, more than the 64 KB disk
    with _mounted(recordings, "-t", "tmpfs", "-o", "size=64k", "tmpfs") as mounted:
        if not mounted:  # no mounting here: the call's directory is /dev/full (the sink cannot open)
            _link_to_dev_full(recordings)
        recording, logs, server = await _one_stream(settings, frames)

    _assert_wav_disabled_once(recording, logs, server, frames)
