"""
One started stream: decode, place on the media clock, buffer, fan out.

This is the per-frame path after the parser. ``media`` is synchronous and
cheap: decode, place, notify. Uses asyncio only through ``Fanout``; never
touches a socket and never logs per frame.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from receiver.codecs import L16ByteOrderProbe, decoder_for, lookup_table_for
from receiver.errors import MalformedMessage, MediaAheadOfClock
from receiver.events import FRAME_MS, InterleavedMediaReceived, MediaReceived, StreamStarted, Track
from receiver.logging import Logger
from receiver.mediaclock import MediaClock, Placement
from receiver.ringbuffer import TrackBuffer
from receiver.session import SessionStats
from receiver.sinks import SinkFactory, StreamInfo, StreamOutcome
from receiver.stream.fanout import Fanout

# On the per-frame path, enum members are read from module constants: a lookup on the
# enum class goes through EnumType.__getattr__'s slot (about 200 instructions on CPython 3.11).
_PLACED = Placement.PLACED
_UNDECLARED = Placement.UNDECLARED_TRACK
_AHEAD = Placement.AHEAD


@dataclass(frozen=True, slots=True)
class MediaSettings:
    reorder_window_ms: int = 100
    max_gap_ms: int = 30_000
    buffer_seconds: float = 10.0
    sink_close_timeout: float = 10.0
    max_media_lead_seconds: float = 5.0  # how far media time may run ahead of wall time (0: no bound)


class StreamPipeline:
    """Everything that happens to one stream's audio after parsing."""

    __slots__ = ("_decode", "_table", "_probe", "_settings", "buffers", "clock", "fanout", "info", "undeclared")

    def __init__(
        self,
        started: StreamStarted,
        settings: MediaSettings,
        sink_factories: Sequence[SinkFactory],
        logger: Logger,
    ) -> None:
        fmt = started.media_format
        rate = fmt.sample_rate
        self.info = StreamInfo(
            stream_id=started.stream_id,
            call_id=started.call_id,
            platform=started.platform,
            tracks=started.tracks,
            media_format=fmt,
            custom_parameters=started.custom_parameters,
            call=started.call,
        )
        self._settings = settings
        self._probe = L16ByteOrderProbe() if started.byteorder_unknown else None
        self._decode = self._probe.decode if self._probe is not None else decoder_for(fmt)
        table = lookup_table_for(fmt) if self._probe is None else None
        # The ring write takes the table as a buffer: a memoryview's export costs a few
        # instructions a frame, a numpy array's about 300.
        self._table = table.data if table is not None else None
        capacity = max(int(settings.buffer_seconds * rate), 2 * rate * settings.reorder_window_ms // 1000)
        self.buffers = {track: TrackBuffer(capacity) for track in started.tracks}
        window = rate * settings.reorder_window_ms // 1000
        self.clock = MediaClock(
            self.buffers,
            sample_rate=rate,
            window=window,
            max_gap=rate * settings.max_gap_ms // 1000,
            frame_samples=rate * FRAME_MS // 1000,
            allowance=_allowance(rate, settings.max_media_lead_seconds, window),
        )
        sinks = []
        for factory in sink_factories:
            try:
                sinks.append(factory(self.info))
            except Exception as exc:
                logger.error(
                    "sink_failed",
                    sink=getattr(factory, "__name__", repr(factory)),
                    phase="create",
                    error=repr(exc)[:200],
                )
        self.fanout = Fanout(self.info, self.buffers, lambda: self.clock.committed, sinks, logger)
        self.undeclared = 0

    def start(self) -> None:
        self.fanout.start()

    def media(self, event: MediaReceived) -> Placement:
        """Decode one frame and place it (raises only ``MalformedMessage`` from the codec)."""
        return self.frame(event.track, event.timestamp_ms, event.chunk, event.payload)

    def frame(self, track: Track, timestamp_ms: int | None, chunk: int | None, payload: bytes) -> Placement:
        """``media`` from the frame's parts: the stream handler's binary frames come this way,
        with no event object made for them."""
        table = self._table
        if table is not None:  # G.711: decoded straight into the ring buffer when in order
            placement = self.clock.place_encoded(track, timestamp_ms, chunk, payload, self._decode, table)
        else:
            placement = self.clock.place(track, timestamp_ms, chunk, self._decode(payload))
        if placement is _UNDECLARED:
            self.undeclared += 1
        elif placement is _AHEAD:
            self._ahead()
        fanout = self.fanout
        if fanout.armed:  # else every sink's wake-up is set already
            fanout.notify()
        return placement

    def _ahead(self) -> None:
        lead = self._settings.max_media_lead_seconds
        raise MediaAheadOfClock(f"media time ran more than {lead:g} s ahead of the wall clock")

    def media_interleaved(self, event: InterleavedMediaReceived) -> Placement:
        """Decode one frame carrying every track, place each channel on its track.

        Returns the worst placement of its channels (raises only ``MalformedMessage``).
        """
        return self.interleaved(event.tracks, event.payload)

    def interleaved(self, tracks: tuple[Track, ...], payload: bytes) -> Placement:
        """``media_interleaved`` from the frame's parts (the stream handler's way: no event object)."""
        width = len(tracks)
        table = self._table
        clock = self.clock
        result = _PLACED
        if table is not None:  # G.711, or L16 in this machine's byte order: each channel straight into its ring
            if len(payload) % (width if len(table) else 2 * width):
                raise MalformedMessage(f"a {width}-channel frame must hold whole sample frames")
            decode = self._decode
            for channel, track in enumerate(tracks):
                placement = clock.place_encoded(track, None, None, payload, decode, table, channel, width)
                if placement is not _PLACED:
                    result = self._placed_badly(placement, result)
        else:
            samples = self._decode(payload)
            if len(samples) % width:
                raise MalformedMessage(f"a {width}-channel frame must hold whole sample frames")
            for channel, track in enumerate(tracks):
                placement = clock.place(track, None, None, samples[channel::width])
                if placement is not _PLACED:
                    result = self._placed_badly(placement, result)
        fanout = self.fanout
        if fanout.armed:  # else every sink's wake-up is set already
            fanout.notify()
        return result

    def _placed_badly(self, placement: Placement, result: Placement) -> Placement:
        """Count or refuse one channel's placement; the worse of it and ``result``."""
        if placement is _UNDECLARED:
            self.undeclared += 1
        elif placement is _AHEAD:
            self._ahead()
        return placement if placement > result else result

    @property
    def readings(self) -> dict[str, str]:
        """What the pipeline read from the audio (the byte order of unconfirmed L16)."""
        probe = self._probe
        if probe is None:
            return {}
        return {"l16_byteorder": f"{probe.byteorder} (from the audio)" if probe.byteorder else "undecided (little)"}

    async def finish(
        self, *, reason: str, close_code: int | None, session: SessionStats, error: str | None = None
    ) -> StreamOutcome:
        """Commit everything, let the sinks drain, close them; return the outcome."""
        self.clock.flush()
        outcome = self.outcome(reason=reason, close_code=close_code, session=session, error=error)
        self.fanout.notify()
        await self.fanout.close(outcome, grace=self._settings.sink_close_timeout)
        # Every sink has read what it will (or was cancelled): the memory goes back now, not at
        # the next garbage-collection pass.
        for buffer in self.buffers.values():
            buffer.release()
        return self.outcome(reason=reason, close_code=close_code, session=session, error=error)

    def outcome(
        self, *, reason: str, close_code: int | None, session: SessionStats, error: str | None = None
    ) -> StreamOutcome:
        samples = self.clock.head
        tracks = self.clock.stats()
        return StreamOutcome(
            reason=reason,
            close_code=close_code,
            duration_seconds=samples / self.info.sample_rate,
            samples=samples,
            tracks={track.value: stats.as_dict() for track, stats in tracks.items()},
            messages=session.messages,
            unknown_events=session.unknown_events,
            sequence_gaps=session.sequence_gaps,
            audio_gaps=sum(stats.audio_gaps for stats in tracks.values()),
            sequence_out_of_order=session.sequence_out_of_order,
            dtmf=session.dtmf,
            discontinuities=self.clock.discontinuities,
            undeclared_track_frames=self.undeclared,
            sink_losses=self.fanout.losses,
            gap_spans={track.value: spans for track, spans in self.clock.gap_spans().items() if spans},
            sink_loss_spans=self.fanout.loss_spans,
            disabled_sinks=self.fanout.disabled,
            error=error,
            files=self.fanout.files,
            **self.fanout.pause_summary(samples),
        )


def _allowance(rate: int, lead: float, window: int) -> Callable[[], int] | None:
    """How far a stream's newest audio may reach now: the wall time since it started, plus
    ``lead`` seconds and the reorder window (None when ``lead`` is 0: no bound)."""
    if lead <= 0:
        return None
    started = time.monotonic()
    return lambda: int((time.monotonic() - started + lead) * rate) + window
