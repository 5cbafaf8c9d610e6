"""Play a platform's messages through a session and a stream pipeline (no sockets, no sinks)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import orjson
import structlog

from receiver.events import (
    DtmfReceived,
    Event,
    InterleavedMediaReceived,
    MediaReceived,
    StreamStarted,
    StreamStopped,
    Track,
)
from receiver.routes import Route
from receiver.session import StreamSession
from receiver.stream.pipeline import MediaSettings, StreamPipeline

CONNECTION_ID = "conn-test"


@dataclass
class Played:
    session: StreamSession
    started: StreamStarted | None = None
    pipeline: StreamPipeline | None = None
    events: list[Event] = field(default_factory=list)
    replies: list[dict[str, object]] = field(default_factory=list)
    stopped: StreamStopped | None = None

    @property
    def dtmf(self) -> list[str]:
        return [e.digit for e in self.events if isinstance(e, DtmfReceived)]

    def audio(self) -> dict[Track, npt.NDArray[np.int16]]:
        assert self.pipeline is not None
        clock = self.pipeline.clock
        clock.flush()
        return {track: buf.latest(clock.head) for track, buf in self.pipeline.buffers.items()}


def play(messages: list[str | bytes], *, route: Route | None = None, subprotocol: str | None = None) -> Played:
    """Feed every message; stop at the first ``StreamStopped`` (as the server does)."""
    session = StreamSession(route=route, subprotocol=subprotocol, connection_id=CONNECTION_ID)
    played = Played(session)
    for message in messages:
        first = session.receive_text(message) if isinstance(message, str) else session.receive_binary(message)
        played.replies += [orjson.loads(r) for r in session.take_replies()]
        for event in [first, *session.take_backlog()]:
            if event is None:
                continue
            played.events.append(event)
            if isinstance(event, StreamStarted):
                played.started = event
                played.pipeline = StreamPipeline(event, MediaSettings(), [], structlog.get_logger())
            elif isinstance(event, MediaReceived):
                assert played.pipeline is not None
                played.pipeline.media(event)
            elif isinstance(event, InterleavedMediaReceived):
                assert played.pipeline is not None
                played.pipeline.media_interleaved(event)
            elif isinstance(event, StreamStopped):
                played.stopped = event
                return played
    return played
