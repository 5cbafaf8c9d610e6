"""
Transcript events and where they go: a JSON-lines file per call, the log, an HTTP callback.

Every event a plugin publishes (``Transcript``: call id, stream id, track,
start and end on the stream's media clock in seconds, text, final or partial,
engine) goes to

- ``{recordings_dir}/{call_id}/transcript.jsonl``, one JSON object a line
  (next to the call's WAV files), in media-clock order: an event waits there
  until the audio fed to the plugins is ``REORDER_SECONDS`` past its start
  (or the stream ends), so slower engines' events fall into place; one later
  still is written when it comes (counted as out of order);
  While a stream's plugins still decode, ``transcript.{stream_id}.decoding``
  sits beside it (removed when the stream's last event is written), so a
  reader can tell a finished transcript from one still growing;
- the log, under the logger name ``receiver.transcripts``;
- an optional HTTP callback URL, one POST per event, retried a few times with
  back-off from a bounded queue: a slow or dead endpoint loses events
  (counted and logged at stream end), it never blocks the stream;
- the call store, when the service has one (``on_event``: the store's
  ``transcript_published``, which only enqueues), so ``receiver transcript``
  and ``GET /calls/<id>/transcript`` read every stream's events, whichever
  process or host transcribed it.

The log and the callback get every event as soon as it is published.
``read_transcript`` sorts a call's events by media-clock time (a call may
have had several streams), which is the dialogue ``receiver transcript``
prints.

Uses asyncio (one writer task per stream); never touches the media socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import os
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

import orjson

from receiver.events import Track
from receiver.logging import get_logger
from receiver.sinks import StreamInfo
from receiver.sinks.wav import safe_name

TRANSCRIPTS = "receiver.transcripts"
TRANSCRIPT_FILE: Final = "transcript.jsonl"
QUEUE_SIZE: Final = 1000
CALLBACK_ATTEMPTS: Final = 3
CALLBACK_TIMEOUT: Final = 5.0
CALLBACK_BACKOFF = 0.2  # seconds before the first retry; doubles
REORDER_SECONDS: Final = 10.0  # media-clock seconds an event waits for earlier ones before the file gets it

log = get_logger(TRANSCRIPTS)


@dataclass(frozen=True, slots=True)
class Transcript:
    """One transcript event on a stream's media clock (seconds from the stream's start)."""

    call_id: str
    stream_id: str
    track: str
    start: float
    end: float
    text: str
    final: bool = True
    engine: str = ""
    kind: str = "transcript"  # transcript, keyword, or speech (a VAD segment without text)
    words: tuple[
        tuple[float, float, str], ...
    ] = ()  # (start, end, word) on the media clock, where the engine gives them

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if not self.words:
            del data["words"]  # engines without word times write what they always wrote
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Transcript:
        return cls(
            call_id=str(data["call_id"]),
            stream_id=str(data["stream_id"]),
            track=str(data["track"]),
            start=float(data["start"]),
            end=float(data["end"]),
            text=str(data.get("text", "")),
            final=bool(data.get("final", True)),
            engine=str(data.get("engine", "")),
            kind=str(data.get("kind", "transcript")),
            words=tuple((float(s), float(e), str(w)) for s, e, w in data.get("words", ())),
        )


TranscriptListener = Callable[[Transcript], None]


class TranscriptFeed:
    """Hands every transcript event to its listeners (the call store, the metrics, the console's Live page).

    ``publish`` is a plugin's ``on_transcript``: it runs on the loop, so a
    listener must return at once. One that raises is logged; the others
    still hear the event.
    """

    def __init__(self) -> None:
        self._listeners: list[TranscriptListener] = []

    def subscribe(self, listener: TranscriptListener) -> None:
        self._listeners.append(listener)

    def publish(self, event: Transcript) -> None:
        for listener in self._listeners:
            try:
                listener(event)
            except Exception as exc:
                log.error("transcript_listener_failed", listener=repr(listener)[:80], error=repr(exc)[:200])


def transcript_path(recordings_dir: str | os.PathLike[str], call_id: str) -> Path:
    return Path(recordings_dir) / safe_name(call_id) / TRANSCRIPT_FILE


def decoding_marker(transcript: Path, stream_id: str) -> Path:
    """The file that says a stream's transcript is still being decoded (beside the transcript)."""
    return transcript.with_name(f"transcript.{safe_name(stream_id)}.decoding")


def still_decoding(transcript: Path) -> list[str]:
    """The streams of the call whose plugins have not finished (their markers' stream ids)."""
    return sorted(
        p.name[len("transcript.") : -len(".decoding")] for p in transcript.parent.glob("transcript.*.decoding")
    )


class Transcripts:
    """What a plugin publishes to: the transcript output of one stream, stamped with the plugin's name.

    ``publish`` never blocks and never raises: a full queue drops the event (counted).
    """

    __slots__ = ("_output", "engine")

    def __init__(self, output: StreamTranscripts, engine: str) -> None:
        self._output = output
        self.engine = engine

    def publish(
        self,
        track: Track | str,
        start: float,
        end: float,
        text: str,
        *,
        final: bool = True,
        kind: str = "transcript",
        words: Iterable[tuple[float, float, str]] = (),
    ) -> Transcript:
        info = self._output.info
        event = Transcript(
            call_id=info.call_id,
            stream_id=info.stream_id,
            track=str(track),
            start=round(float(start), 3),
            end=round(float(end), 3),
            text=text,
            final=final,
            engine=self.engine,
            kind=kind,
            words=tuple((round(float(ws), 3), round(float(we), 3), w) for ws, we, w in words),
        )
        self._output.put(event)
        return event


class StreamTranscripts:
    """The transcript output of one stream: a queue and a writer task (file, log, callback)."""

    def __init__(
        self,
        info: StreamInfo,
        *,
        recordings_dir: str,
        callback_url: str | None,
        on_event: Callable[[Transcript], None] | None = None,
    ) -> None:
        self.info = info
        self.on_event = on_event
        self.path = transcript_path(recordings_dir, info.call_id)
        self.callback_url = callback_url
        self.events: list[Transcript] = []  # everything published (for tests and summaries)
        self.dropped = 0
        self.callback_failed = 0
        self.out_of_order = 0  # events that came later than the reorder window
        self._held: list[tuple[float, float, int, Transcript]] = []  # a heap, by start on the media clock
        self._clock = 0.0  # the media clock as far as the plugins have been fed (seconds)
        self._last_written = float("-inf")
        self._queue: asyncio.Queue[Transcript | None] = asyncio.Queue(QUEUE_SIZE)
        self._callbacks: asyncio.Queue[Transcript | None] = asyncio.Queue(QUEUE_SIZE)
        self._users = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._log = log.bind(stream_id=info.stream_id, call_id=info.call_id)

    def acquire(self) -> None:
        if not self._tasks:
            loop = asyncio.get_running_loop()
            self._tasks.add(loop.create_task(self._write(), name=f"transcripts:{self.info.stream_id}"))
            if self.callback_url:
                self._tasks.add(loop.create_task(self._post(), name=f"transcript-callback:{self.info.stream_id}"))
        self._users += 1

    async def release(self, drain_seconds: float = 5.0) -> bool:
        """One user is done; the last one drains the queue and stops the tasks. True when it was the last."""
        self._users -= 1
        if self._users > 0:
            return False
        self._flush(float("inf"))
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)
        if self.callback_url:
            with contextlib.suppress(asyncio.QueueFull):
                self._callbacks.put_nowait(None)
        _done, pending = await asyncio.wait(self._tasks, timeout=drain_seconds)
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self.events or self.dropped:
            self._log.info(
                "transcript_summary",
                events=len(self.events),
                dropped=self.dropped,
                out_of_order=self.out_of_order,
                callback_failed=self.callback_failed,
                path=str(self.path),
            )
        return True

    def put(self, event: Transcript) -> None:
        """Log and post the event now; hold it for the file until the media clock passes the reorder window."""
        self.events.append(event)
        self._log.info(
            "transcript",
            track=event.track,
            start=event.start,
            end=event.end,
            text=event.text,
            final=event.final,
            engine=event.engine,
            kind=event.kind,
        )
        if self.callback_url:
            try:
                self._callbacks.put_nowait(event)
            except asyncio.QueueFull:
                self.callback_failed += 1
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception as exc:  # the store's enqueue never raises; a bug must not stop the stream
                self._log.error("transcript_store_failed", error=repr(exc)[:200])
        heapq.heappush(self._held, (event.start, event.end, len(self.events), event))
        self._flush(self._clock - REORDER_SECONDS)

    def advance(self, seconds: float) -> None:
        """The plugins have been fed the media clock up to ``seconds``."""
        if seconds > self._clock:
            self._clock = seconds
            self._flush(seconds - REORDER_SECONDS)

    def _flush(self, until: float) -> None:
        while self._held and self._held[0][0] <= until:
            event = heapq.heappop(self._held)[3]
            if event.start < self._last_written:
                self.out_of_order += 1
            self._last_written = max(self._last_written, event.start)
            try:
                self._queue.put_nowait(event)
            except asyncio.QueueFull:
                self.dropped += 1

    async def _write(self) -> None:
        marker = decoding_marker(self.path, self.info.stream_id)
        await asyncio.to_thread(_begin, marker)
        try:
            while True:
                event = await self._queue.get()
                batch = [event]
                while not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                events = [e for e in batch if e is not None]
                if events:
                    data = b"".join(orjson.dumps(e.as_dict()) + b"\n" for e in events)
                    await asyncio.to_thread(_append, self.path, data)
                if None in batch:
                    return
        finally:
            # Also when cancelled at the end of the drain: what is in the file is all there will be.
            with contextlib.suppress(OSError):
                await asyncio.to_thread(marker.unlink, missing_ok=True)

    async def _post(self) -> None:
        import aiohttp

        assert self.callback_url is not None
        timeout = aiohttp.ClientTimeout(total=CALLBACK_TIMEOUT)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while (event := await self._callbacks.get()) is not None:
                if not await _post_one(session, self.callback_url, event):
                    self.callback_failed += 1
                    if self.callback_failed == 1:
                        self._log.warning(
                            "transcript_callback_failed", url=self.callback_url, attempts=CALLBACK_ATTEMPTS
                        )


async def _post_one(session: Any, url: str, event: Transcript) -> bool:
    import aiohttp

    body = orjson.dumps(event.as_dict())
    for attempt in range(CALLBACK_ATTEMPTS):
        try:
            async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as response:
                if response.status < 500 and response.status != 429:
                    return bool(200 <= response.status < 300)
        except (aiohttp.ClientError, TimeoutError):
            pass
        if attempt + 1 < CALLBACK_ATTEMPTS:
            await asyncio.sleep(CALLBACK_BACKOFF * 2**attempt)
    return False


def _begin(marker: Path) -> None:
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()


def _append(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


def read_transcript(path: str | os.PathLike[str]) -> list[Transcript]:
    """A call's transcript in media-clock order (both tracks interleaved); bad lines are skipped."""
    events = []
    with open(path, "rb") as f:
        for line in f:
            try:
                events.append(Transcript.from_dict(orjson.loads(line)))
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                continue
    return sort_events(events)


def sort_events(events: Iterable[Transcript]) -> list[Transcript]:
    return sorted(events, key=lambda e: (e.start, e.end, e.track != Track.INBOUND, e.engine))


SPEAKERS: Final = {"inbound": "caller", "outbound": "agent"}


def format_dialogue(events: Iterable[Transcript], *, partial: bool = False) -> str:
    """One line per event: ``[  12.34 -   13.50] caller: text  (engine)``."""
    lines = []
    for e in events:
        if not e.final and not partial:
            continue
        text = e.text if e.kind != "speech" else "(speech)"
        if e.kind == "keyword":
            text = f"<keyword> {text}"
        speaker = SPEAKERS.get(e.track, e.track)
        engine = e.engine if e.final else f"{e.engine}, partial"
        lines.append(f"[{e.start:8.2f} - {e.end:8.2f}] {speaker:>6}: {text}  ({engine})")
    return "\n".join(lines)
