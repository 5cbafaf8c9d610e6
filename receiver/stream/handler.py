"""
One live connection's state, and the call each of its messages makes.

Part of the server's shell (only ``server.py`` makes them): ``StreamHandler``
is what the server keeps about a connection (its session, its pipeline once
started, its limits, its log), and ``on_message`` is the callback the fast
path (``fastpath.py``) calls for every message, from ``data_received``.

``on_message`` takes the message a started stream is made of (media, after
the stream's first frame, whenever neither the rate limit's check nor the
processing-time sample is due) from the frame to the ring write: session,
typed parser, pipeline, with no Python frame of the server's in between.
Every other message goes to the server's own ``_on_message`` (``general``),
which does everything (and says so in the log); so does an event the session
returns that is not media (one track's, or every track's in one interleaved
frame: ``on_event``), and a
discontinuity is logged by the server (``on_discontinuity``).

Where the install compiled the media path, this module is compiled from this
file (``handler.pxd`` makes the handler a C class whose session and pipeline
are typed, so their media calls are C calls; receiver/mediaclock.pxd says
how). It touches no socket.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Callable
from typing import Any, Final

from receiver.events import Event, InterleavedMediaReceived, MediaReceived, StreamStopped
from receiver.logging import Logger
from receiver.mediaclock import Placement
from receiver.metrics import SAMPLE_MASK
from receiver.routes import Route
from receiver.security.auth import HandshakeResult
from receiver.security.limits import ConnectionLimits
from receiver.session import StreamSession
from receiver.stream.pipeline import StreamPipeline

# On the per-frame path, enum members are read from module constants: a lookup on the
# enum class goes through EnumType.__getattr__'s slot (about 200 instructions on CPython 3.11).
_DISCONTINUITY = Placement.DISCONTINUITY


class _Missing(enum.Enum):
    MISSING = enum.auto()


MISSING: Final = _Missing.MISSING  # ``unauthenticated``: the connection holds no unauthenticated place


def _unrouted(*args: object) -> Any:
    raise RuntimeError("StreamHandler.route_to() was not called")


class StreamHandler:
    """What the server keeps about one live connection.

    Args:
        ws: The connection (the handler never touches it; the server does).
        log: The stream's logger.
        limits: The connection's limits (``security/limits.py``).
        handshake: What authentication decided at the upgrade, for the start message.
        route: The request path's route (fixes the format, ``[[routes]]``).
        unauthenticated: The client whose unauthenticated place the connection holds
            (``MISSING``: it holds none).
    """

    __slots__ = (
        "ack_misses",
        "closed_by",
        "connected_at",
        "counted",
        "ended",
        "first_media",
        "general",
        "handshake",
        "limits",
        "log",
        "on_discontinuity",
        "on_event",
        "pipeline",
        "received",
        "session",
        "unauthenticated",
        "ws",
    )

    def __init__(
        self,
        ws: Any,
        log: Logger,
        limits: ConnectionLimits,
        handshake: HandshakeResult | None,
        route: Route | None,
        unauthenticated: str | None | _Missing = MISSING,
    ) -> None:
        self.ws = ws
        self.session = StreamSession(route=route, subprotocol=ws.subprotocol)
        self.pipeline: StreamPipeline | None = None
        self.log = log
        self.connected_at = time.monotonic()
        self.limits = limits
        self.handshake = handshake  # what authentication decided at the upgrade, for the start message
        self.closed_by: tuple[str, int] | None = None  # (reason, close code) when the server closed it
        self.first_media = True
        # Delayed ACKs (the server's): -1 off; else how many checks in a row found them gone
        self.ack_misses = -1
        self.received = 0  # messages, counted before parsing (the rate limit)
        self.ended = asyncio.Event()  # set once the stream's sinks are closed
        self.counted = False  # takes one of max_streams (authenticated, or no auth configured)
        self.unauthenticated = unauthenticated  # its client, while it holds an unauthenticated place
        self.general: Callable[[StreamHandler, str | bytes], StreamStopped | None] = _unrouted
        self.on_event: Callable[[StreamHandler, Event | None], StreamStopped | None] = _unrouted
        self.on_discontinuity: Callable[[StreamHandler, MediaReceived], None] = _unrouted

    def route_to(
        self,
        general: Callable[[StreamHandler, str | bytes], StreamStopped | None],
        on_event: Callable[[StreamHandler, Event | None], StreamStopped | None],
        on_discontinuity: Callable[[StreamHandler, MediaReceived], None],
    ) -> Callable[[str | bytes], StreamStopped | None]:
        """Where ``on_message`` sends what it does not take; returns ``on_message``.

        ``general(handler, message)`` takes a whole message (it counts it);
        ``on_event(handler, event)`` an event the session returned that is not
        one track's media; ``on_discontinuity(handler, media)`` logs a frame the
        media clock took as a discontinuity (the frame is placed already).
        """
        self.general = general
        self.on_event = on_event
        self.on_discontinuity = on_discontinuity
        return self.on_message

    def on_message(self, message: str | bytes) -> StreamStopped | None:
        """One message of the stream; returns the ``StreamStopped`` that ends it, else None.

        Raises:
            StreamProtocolError: The message ends the stream with its close code.
        """
        received = self.received + 1
        pipeline = self.pipeline
        if pipeline is None or self.first_media or not received & SAMPLE_MASK or received >= self.limits.rate_check_at:
            return self.general(self, message)
        self.received = received
        session = self.session
        if isinstance(message, str):
            event = session.receive_text(message)
        else:  # audio: from the frame straight to the pipeline
            channels = session.binary_media()
            if len(channels) == 1:  # (no timestamp: it follows the track's audio, never a discontinuity)
                pipeline.frame(channels[0], None, None, message)
                return None
            if channels:  # one frame of every track (jambonz, AudioHook)
                pipeline.interleaved(channels, message)
                return None
            event = session.receive_binary(message)
        if type(event) is MediaReceived:
            if pipeline.media(event) is _DISCONTINUITY:
                self.on_discontinuity(self, event)
            return None
        if type(event) is InterleavedMediaReceived:  # one frame of every track (jambonz, AudioHook)
            pipeline.media_interleaved(event)
            return None
        return self.on_event(self, event)
