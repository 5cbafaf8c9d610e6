"""Graceful drain of a real ``receiver serve`` process on SIGTERM (and a second signal)."""

from __future__ import annotations

import http.client
import signal
from contextlib import ExitStack
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from receiver.sinks.wav import repair_wav
from receiver.testing import MiniVoiceMessages

from .serve_process import ReceiverProcess

FRAME = bytes(range(256))[:160]


def _open(stack: ExitStack, port: int, messages: MiniVoiceMessages, frames: int) -> ClientConnection:
    ws = stack.enter_context(connect(f"ws://127.0.0.1:{port}/mv"))
    ws.send(messages.connected())
    ws.send(messages.start(tracks=("inbound",)))
    for i in range(frames):
        ws.send(messages.media("inbound", i + 1, 20 * i, FRAME))
    return ws


def _close_code(ws: ClientConnection) -> tuple[int | None, str | None]:
    with pytest.raises(ConnectionClosed):
        while True:
            ws.recv(timeout=30)
    return ws.close_code, ws.close_reason


def _status(port: int, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


def test_sigterm_drains_then_a_second_sigterm_closes_1012_and_finalises_files(tmp_path: Path) -> None:
    with ReceiverProcess(tmp_path, env={"RECEIVER_DRAIN_TIMEOUT": "300"}) as server, ExitStack() as stack:
        first = MiniVoiceMessages(stream_id="s1", call_id="c1")
        second = MiniVoiceMessages(stream_id="s2", call_id="c2")
        ws1, ws2 = _open(stack, server.port, first, 50), _open(stack, server.port, second, 75)
        server.wait_for("stream_started", count=2)
        assert _status(server.port, "/readyz") == 200

        server.signal(signal.SIGTERM)
        server.wait_for("server_draining")
        assert _status(server.port, "/readyz") == 503
        assert _status(server.port, "/healthz") == 200
        with pytest.raises(InvalidStatus) as refused, connect(f"ws://127.0.0.1:{server.port}/mv"):
            pass
        assert refused.value.response.status_code == 503

        # A live stream carries on and ends on its own.
        ws1.send(first.media("inbound", 51, 1000, FRAME))
        ws1.send(first.stop())
        assert _close_code(ws1) == (1000, "")
        server.wait_for("stream_ended", stream_id="s1")
        assert server.proc.poll() is None  # still draining: s2 is live

        server.signal(signal.SIGTERM)  # the second signal: stop waiting
        assert _close_code(ws2) == (1012, "service restart")
        assert server.wait() == 0
        ended = server.wait_for("stream_ended", stream_id="s2")

    assert ended["reason"] == "shutdown" and ended["close_code"] == 1012
    for name, frames in (("c1/s1", 51), ("c2/s2", 75)):
        path = tmp_path / "recordings" / f"{name}.inbound.wav"
        assert not repair_wav(path)  # the header was finalised: nothing to repair
        assert path.stat().st_size == 44 + frames * 160 * 2


def test_drain_timeout_closes_the_rest_with_1012(tmp_path: Path) -> None:
    with ReceiverProcess(tmp_path, env={"RECEIVER_DRAIN_TIMEOUT": "0.5"}) as server, ExitStack() as stack:
        ws = _open(stack, server.port, MiniVoiceMessages(), 10)
        server.wait_for("stream_started")
        server.signal(signal.SIGTERM)
        assert _close_code(ws) == (1012, "service restart")
        assert server.wait() == 0
        drained = server.wait_for("server_drained")

    assert drained["remaining_streams"] == 1 and drained["hurried"] is False
    assert not repair_wav(tmp_path / "recordings" / "call_test" / "str_test.inbound.wav")


def test_sigint_exits_promptly_and_still_finalises(tmp_path: Path) -> None:
    with ReceiverProcess(tmp_path, env={"RECEIVER_DRAIN_TIMEOUT": "300"}) as server, ExitStack() as stack:
        ws = _open(stack, server.port, MiniVoiceMessages(), 25)
        server.wait_for("stream_started")
        server.signal(signal.SIGINT)
        assert _close_code(ws) == (1012, "service restart")
        assert server.wait() == 0

    path = tmp_path / "recordings" / "call_test" / "str_test.inbound.wav"
    assert not repair_wav(path)
    assert path.stat().st_size == 44 + 25 * 160 * 2
