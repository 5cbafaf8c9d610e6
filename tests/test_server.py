"""End to end: the real server on 127.0.0.1 port 0, a real websockets client, real WAV files."""

from __future__ import annotations

import asyncio
import gc
import random
import wave
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
import pytest
from structlog.testing import capture_logs
from websockets.asyncio.client import ClientConnection, connect

from receiver import codecs
from receiver.app import ReceiverServer
from receiver.config import Settings
from receiver.events import Track
from receiver.sinks import AudioBlock, StreamInfo
from receiver.stream.pipeline import StreamPipeline
from receiver.testing import MiniVoiceMessages, RecordingSink, TwilioMessages

from .conftest import wait_streams_done

FRAME = 160
Samples = npt.NDArray[np.int16]


def tone(freq: float, seconds: float, rate: int = 8000, amp: int = 8000) -> Samples:
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * freq * t) * amp).astype(np.int16)


def read_wav(path: Path) -> tuple[int, int, Samples]:
    with wave.open(str(path)) as w:
        return w.getnchannels(), w.getframerate(), np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


async def send_all(ws: ClientConnection, texts: list[str]) -> None:
    for text in texts:
        await ws.send(text)


async def closed(ws: ClientConnection) -> int | None:
    await asyncio.wait_for(ws.wait_closed(), 10)
    return ws.close_code


def url(server: ReceiverServer, path: str = "/minivoice") -> str:
    return f"ws://127.0.0.1:{server.port}{path}"


async def test_two_track_stream_with_loss_duplicates_and_reorder_records_exact_wavs(
    server: ReceiverServer, settings: Settings
) -> None:
    frames = 100  # two seconds
    rng = random.Random(7)
    source = {Track.INBOUND: tone(440, 2), Track.OUTBOUND: tone(1000, 2, amp=5000)}
    payloads = {
        t: [codecs.encode_ulaw(s[k * FRAME : (k + 1) * FRAME]) for k in range(frames)] for t, s in source.items()
    }
    lost = {(Track.INBOUND, 10), (Track.INBOUND, 11), (Track.OUTBOUND, 40), (Track.OUTBOUND, 99)}
    plan = [(20 * k + rng.uniform(0, 80), t, k) for t in source for k in range(frames) if (t, k) not in lost]
    plan.sort(key=lambda p: p[0])
    for i in rng.sample(range(len(plan)), 8):  # duplicates right after the original
        plan.insert(i + 1, plan[i])
    m = MiniVoiceMessages(stream_id="str_e2e", call_id="call_e2e")

    async with connect(url(server)) as ws:
        await send_all(ws, [m.connected(), m.start()])
        await send_all(ws, [m.media(t.value, k + 1, 20 * k, payloads[t][k]) for _, t, k in plan])
        await ws.send(m.stop("call_ended"))
        assert await closed(ws) == 1000
    await wait_streams_done(server)

    directory = Path(settings.recordings_dir) / "call_e2e"
    decoded = {t: codecs.decode_ulaw(b"".join(p)) for t, p in payloads.items()}
    for track, k in lost:
        decoded[track][k * FRAME : (k + 1) * FRAME] = 0
    # The last outbound frame was lost: the track is padded to the inbound's end.
    for track in Track:
        channels, rate, samples = read_wav(directory / f"str_e2e.{track.value}.wav")
        assert (channels, rate) == (1, 8000)
        assert np.array_equal(samples, decoded[track]), track
    channels, _, stereo = read_wav(directory / "str_e2e.stereo.wav")
    assert channels == 2
    assert np.array_equal(stereo[0::2], decoded[Track.INBOUND])
    assert np.array_equal(stereo[1::2], decoded[Track.OUTBOUND])

    outcome = server.outcomes[-1]
    assert outcome.reason == "call_ended"
    assert outcome.duration_seconds == 2.0
    assert outcome.tracks["inbound"]["lost_frames"] == 2
    assert outcome.tracks["outbound"]["lost_frames"] == 2  # 40, and 99: the trailing one is padded and counted too
    assert sum(t["duplicates"] for t in outcome.tracks.values()) == 8


@pytest.mark.parametrize("signalwire", [False, True])
async def test_twilio_format_streams_are_recorded(server: ReceiverServer, settings: Settings, signalwire: bool) -> None:
    t = TwilioMessages(stream_sid="MZabc", call_sid="CAabc", signalwire=signalwire)
    rate = 24000 if signalwire else 8000
    frame = rate // 50
    audio = tone(300, 0.5, rate=rate)
    encode = (lambda s: codecs.encode_l16(s)) if signalwire else codecs.encode_ulaw
    encoding = "audio/x-L16" if signalwire else "audio/x-mulaw"

    async with connect(url(server, "/twilio")) as ws:
        await send_all(ws, [t.connected(), t.start(tracks=("inbound",), encoding=encoding, sample_rate=rate)])
        # Twilio's first timestamp is not 0.
        await send_all(
            ws, [t.media("inbound", k + 1, 52 + 20 * k, encode(audio[k * frame : (k + 1) * frame])) for k in range(25)]
        )
        await ws.send(t.stop())
        assert await closed(ws) == 1000
    await wait_streams_done(server)

    channels, wav_rate, samples = read_wav(Path(settings.recordings_dir) / "CAabc" / "MZabc.inbound.wav")
    expected = audio if signalwire else codecs.decode_ulaw(codecs.encode_ulaw(audio))
    assert (channels, wav_rate) == (1, rate)
    assert not samples[: 52 * rate // 1000].any()
    assert np.array_equal(samples[52 * rate // 1000 :], expected)
    assert server.outcomes[-1].reason == "stop"


def _media_then(m: MiniVoiceMessages, bad: str | bytes) -> list[str | bytes]:
    return [
        m.connected(),
        m.start(tracks=("inbound",)),
        *[m.media("inbound", k + 1, 20 * k, b"\x10" * FRAME) for k in range(10)],
        bad,
    ]


BAD_INPUTS = {
    "malformed_json": (lambda m: "{not json", 4400, "malformed_message"),
    "missing_field": (
        lambda m: orjson.dumps(
            {"event": "media", "sequence_number": 99, "stream_id": "s", "media": {"track": "inbound"}}
        ).decode(),
        4400,
        "malformed_message",
    ),
    "bad_base64": (
        lambda m: orjson.dumps(
            {
                "event": "media",
                "sequence_number": 99,
                "stream_id": "s",
                "media": {"track": "inbound", "chunk": 11, "timestamp": 200, "payload": "@@@"},
            }
        ).decode(),
        4400,
        "malformed_message",
    ),
    "binary_frame": (lambda m: b"\x00\x01", 4400, "malformed_message"),
    "second_start": (lambda m: m.start(), 4409, "unexpected_event"),
    "oversized": (lambda m: "x" * 70_000, 1009, "message_too_big"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
async def test_bad_input_closes_with_its_code_and_keeps_the_audio(
    server: ReceiverServer, settings: Settings, case: str
) -> None:
    make_bad, code, kind = BAD_INPUTS[case]
    m = MiniVoiceMessages(stream_id=f"str_{case}", call_id="call_bad")

    with capture_logs() as logs:
        async with connect(url(server), max_size=None) as ws:
            for text in _media_then(m, make_bad(m)):
                await ws.send(text)
            assert await closed(ws) == code
        await wait_streams_done(server)

    rejected = [e for e in logs if e["event"] == "stream_rejected"]
    assert len(rejected) == 1 and rejected[0]["error_kind"] == kind
    assert rejected[0]["logger_name"] == "receiver.stream"
    _, _, samples = read_wav(Path(settings.recordings_dir) / "call_bad" / f"str_{case}.inbound.wav")
    assert np.array_equal(samples, codecs.decode_ulaw(b"\x10" * FRAME * 10))  # every frame before the bad one
    assert server.outcomes[-1].reason == kind


@pytest.mark.parametrize(
    ("messages", "code"),
    [
        (lambda m: [m.connected(), m.media("inbound", 1, 0, b"\xff")], 4409),
        (lambda m: [m.connected(), m.start(encoding="audio/opus", sample_rate=48000)], 4415),
        (lambda m: ['{"event": "websocket:connected"}'], 4400),
    ],
    ids=["media_before_start", "unsupported_encoding", "unknown_format"],
)
async def test_bad_stream_openings_are_refused_with_a_code(server: ReceiverServer, messages: Any, code: int) -> None:
    async with connect(url(server)) as ws:
        await send_all(ws, messages(MiniVoiceMessages()))
        assert await closed(ws) == code
    await wait_streams_done(server)


async def test_disconnect_without_stop_finalises_the_recording(server: ReceiverServer, settings: Settings) -> None:
    m = MiniVoiceMessages(stream_id="str_drop", call_id="call_drop")
    ws = await connect(url(server))
    await send_all(
        ws,
        [
            m.connected(),
            m.start(),
            *[m.media(t, k + 1, 20 * k, b"\x20" * FRAME) for k in range(30) for t in ("inbound", "outbound")],
        ],
    )
    ws.transport.abort()  # the network fails: no stop, no close frame
    await wait_streams_done(server)

    outcome = server.outcomes[-1]
    assert outcome.reason == "disconnected"
    for name in ("inbound", "outbound", "stereo"):
        channels, _, samples = read_wav(Path(settings.recordings_dir) / "call_drop" / f"str_drop.{name}.wav")
        assert len(samples) == channels * 30 * FRAME


async def test_unknown_events_are_skipped_and_counted(server: ReceiverServer) -> None:
    m = MiniVoiceMessages()
    async with connect(url(server)) as ws:
        await send_all(
            ws,
            [
                m.connected(),
                m.start(),
                '{"event": "heartbeat", "sequence_number": 2}',
                m.media("inbound", 1, 0, b"\xff" * FRAME),
                m.stop(),
            ],
        )
        assert await closed(ws) == 1000
    await wait_streams_done(server)

    assert server.outcomes[-1].unknown_events == 1


async def test_health_and_readiness_on_the_stream_port(server: ReceiverServer) -> None:
    async def get(path: str) -> tuple[bytes, bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        data = await reader.read()
        writer.close()
        head, _, body = data.partition(b"\r\n\r\n")
        return head.split(b"\r\n")[0], body

    assert await get("/healthz") == (b"HTTP/1.1 200 OK", b'{"status":"ok"}\n')
    status, body = await get("/readyz")
    assert status == b"HTTP/1.1 200 OK"
    assert orjson.loads(body) == {"ready": True, "active_streams": 0}
    server.ready = False
    assert (await get("/readyz"))[0] == b"HTTP/1.1 503 Service Unavailable"


class ExplodingSink(RecordingSink):
    async def write(self, block: AudioBlock) -> None:
        raise RuntimeError("boom")


async def test_a_failing_sink_never_ends_the_stream(settings: Settings) -> None:
    good = RecordingSink(name="good")
    bad = ExplodingSink(name="bad")

    def broken_factory(info: StreamInfo) -> RecordingSink:
        raise ValueError("cannot build")

    async with ReceiverServer(settings, sinks=[lambda info: bad, broken_factory, lambda info: good]) as server:
        m = MiniVoiceMessages()
        async with connect(url(server)) as ws:
            await send_all(
                ws,
                [
                    m.connected(),
                    m.start(tracks=("inbound",)),
                    *[m.media("inbound", k + 1, 20 * k, b"\x30" * FRAME) for k in range(20)],
                    m.stop(),
                ],
            )
            assert await closed(ws) == 1000
        await wait_streams_done(server)

    assert np.array_equal(good.audio(Track.INBOUND), codecs.decode_ulaw(b"\x30" * FRAME * 20))
    assert server.outcomes[-1].disabled_sinks == ("bad",)


async def test_lifecycle_and_media_logs_use_their_own_logger_names(server: ReceiverServer) -> None:
    m = MiniVoiceMessages(stream_id="str_log", call_id="call_log")
    with capture_logs() as logs:
        async with connect(url(server)) as ws:
            await send_all(
                ws,
                [
                    m.connected(),
                    m.start(),
                    *[m.media("inbound", k + 1, 20 * k, b"\xff" * FRAME) for k in range(50)],
                    m.dtmf("7", 100),
                    m.stop(),
                ],
            )
            await closed(ws)
        await wait_streams_done(server)

    names = {(e["event"], e.get("logger_name")) for e in logs}
    assert ("stream_connected", "receiver.stream") in names
    assert ("stream_started", "receiver.stream") in names
    assert ("first_media", "receiver.media") in names
    assert ("stream_ended", "receiver.stream") in names
    assert len(logs) < 10  # nothing per frame
    ended = next(e for e in logs if e["event"] == "stream_ended")
    assert ended["stream_id"] == "str_log" and ended["call_id"] == "call_log"
    assert ended["tracks"]["inbound"]["frames"] == 50


async def test_the_server_survives_many_bad_streams_then_records_a_good_one(
    server: ReceiverServer, settings: Settings
) -> None:
    for garbage in ["", "null", "[]", '{"event": null}', b"\xff\xfe", "{" * 1000]:
        async with connect(url(server)) as ws:
            await ws.send(garbage)
            assert (await closed(ws)) in (4400, 4409)
    m = MiniVoiceMessages(stream_id="str_ok", call_id="call_ok")
    async with connect(url(server)) as ws:
        await send_all(
            ws, [m.connected(), m.start(tracks=("inbound",)), m.media("inbound", 1, 0, b"\xff" * FRAME), m.stop()]
        )
        assert await closed(ws) == 1000
    await wait_streams_done(server, count=7)

    assert (Path(settings.recordings_dir) / "call_ok" / "str_ok.inbound.wav").exists()


async def test_an_ended_stream_is_not_kept_alive_by_the_periodic_tasks(tmp_path: Path) -> None:
    settings = Settings(host="127.0.0.1", port=0, recordings_dir=str(tmp_path / "rec"), media_summary_seconds=0.001)
    async with ReceiverServer(settings) as server:
        rounds: asyncio.Queue[int] = asyncio.Queue()
        log_summaries = server._log_summaries

        def counting() -> None:  # each summary round, with how many streams it saw
            log_summaries()
            rounds.put_nowait(len(server._streams))

        server._log_summaries = counting  # type: ignore[method-assign]
        m = MiniVoiceMessages(stream_id="str_gc", call_id="call_gc")
        async with connect(url(server)) as ws:
            await send_all(
                ws,
                [
                    m.connected(),
                    m.start(),
                    *[m.media(t, k + 1, 20 * k, b"\xff" * 160) for k in range(5) for t in ("inbound", "outbound")],
                ],
            )
            while await asyncio.wait_for(rounds.get(), 10) == 0:  # a round saw the live stream
                pass
            await ws.send(m.stop())
            assert await closed(ws) == 1000
        await wait_streams_done(server)
        while await asyncio.wait_for(rounds.get(), 10) != 0:  # and a round after its end
            pass

        gc.collect()
        assert [type(o).__name__ for o in gc.get_objects() if type(o) is StreamPipeline] == []
