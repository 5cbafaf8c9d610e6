"""
Sink plugins: found by entry point, chosen per track in config.toml, fed converted audio.

Plugins are classes registered in the entry-point group ``receiver.sinks``
(ours in pyproject.toml: ``wav``, ``pipe``, ``pocketsphinx``, ``vad``; other
installed packages add their own). config.toml picks them::

    [[sinks]]
    plugin = "pocketsphinx"
    tracks = ["inbound"]                     # inbound, outbound, or both (the default)
    options = { keywords = ["cancel my order"] }

A plugin is any class matching the ``Sink`` protocol, built per stream as
``cls(**options)``. It may declare ``sample_rate`` (None: the stream's) and
``sample_format`` (``"int16"`` or ``"float32"``): ``PluginSink`` converts each
track it was given to those before ``write`` (see ``audio.TrackConverter``),
so block ``start`` and ``sample_rate`` are in the plugin's rate. The stream
the plugin sees at ``open`` lists only its tracks. A plugin that declares a
``transcripts`` attribute gets, before ``open``, a ``Transcripts`` to publish
to (see ``transcript.py``).

Every plugin is built once at start-up with its options, so an unknown
plugin or a bad option is a ``ConfigError`` before any stream arrives.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
from collections.abc import Callable
from typing import Any, Final

import numpy as np

from receiver.config import SinkSpec, parse_sinks
from receiver.errors import ConfigError
from receiver.events import Track
from receiver.sinks import AudioBlock, Sink, SinkFactory, StreamInfo, StreamOutcome
from receiver.transcription.audio import SAMPLE_FORMATS, SampleFormat, TrackConverter
from receiver.transcription.transcript import StreamTranscripts, Transcript, Transcripts

ENTRY_POINT_GROUP: Final = "receiver.sinks"


def available_plugins() -> dict[str, importlib.metadata.EntryPoint]:
    """Every installed plugin by name (the entry-point group ``receiver.sinks``)."""
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def parse_specs(raw: Any) -> list[SinkSpec]:
    """The ``sinks`` setting as specs (``Settings`` has parsed them at load; raw tables are parsed here).

    Raises:
        ConfigError: The shape or a value is wrong.
    """
    return list(parse_sinks(raw))


def load_plugin(name: str) -> type[Any]:
    """The plugin class registered as ``name``.

    Raises:
        ConfigError: No installed package provides it, or it fails to import.
    """
    plugins = available_plugins()
    if name not in plugins:
        raise ConfigError(f"unknown sink plugin {name!r} (installed: {', '.join(sorted(plugins)) or 'none'})")
    try:
        loaded = plugins[name].load()
    except Exception as exc:
        raise ConfigError(f"sink plugin {name!r} failed to load: {exc!r}") from None
    if not callable(loaded):
        raise ConfigError(f"sink plugin {name!r} is not a class")
    return loaded  # type: ignore[no-any-return]


def build_plugin(cls: type[Any], spec: SinkSpec) -> Any:
    """Build one plugin with its options (``ConfigError`` on bad options or a bad plugin)."""
    where = f"sink {spec.name!r} (plugin {spec.plugin})"
    try:
        plugin = cls(**spec.options)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: bad options: {exc}") from None
    if not isinstance(plugin, Sink):
        raise ConfigError(f"{where}: not a sink (needs name, interval, open, write, close)")
    rate = getattr(plugin, "sample_rate", None)
    if rate is not None and (not isinstance(rate, int) or not 1000 <= rate <= 192_000):
        raise ConfigError(f"{where}: sample_rate must be an int in 1000-192000, not {rate!r}")
    fmt = getattr(plugin, "sample_format", "int16")
    if fmt not in SAMPLE_FORMATS:
        raise ConfigError(f"{where}: sample_format must be one of {SAMPLE_FORMATS}, not {fmt!r}")
    return plugin


class TranscriptOutputs:
    """The transcript output of every live stream, shared by that stream's plugins."""

    def __init__(
        self,
        *,
        recordings_dir: str,
        callback_url: str | None,
        on_event: Callable[[Transcript], None] | None = None,
    ) -> None:
        self.recordings_dir = recordings_dir
        self.callback_url = callback_url or None
        self.on_event = on_event
        self.live: dict[str, StreamTranscripts] = {}
        self.finished: list[StreamTranscripts] = []  # the last few, for tests

    def acquire(self, info: StreamInfo) -> StreamTranscripts:
        output = self.live.get(info.stream_id)
        if output is None or output.info is not info:
            output = self.live[info.stream_id] = StreamTranscripts(
                info, recordings_dir=self.recordings_dir, callback_url=self.callback_url, on_event=self.on_event
            )
        output.acquire()
        return output

    async def release(self, output: StreamTranscripts) -> None:
        if await output.release():
            if self.live.get(output.info.stream_id) is output:
                del self.live[output.info.stream_id]
            self.finished = [*self.finished[-99:], output]


class PluginSink:
    """Adapts a plugin to the fan-out: picks its tracks, converts their audio, wires its transcripts."""

    def __init__(self, plugin: Any, spec: SinkSpec, outputs: TranscriptOutputs) -> None:
        self.plugin = plugin
        self.spec = spec
        self.name = spec.name
        self.interval = float(getattr(plugin, "interval", 0.1))
        self._outputs = outputs
        self._output: StreamTranscripts | None = None
        self._converters: dict[Track, TrackConverter] = {}
        self._rate = 0
        self._in_rate = 0
        self._next = 0  # the next stream-clock sample expected

    async def open(self, stream: StreamInfo) -> None:
        tracks = tuple(t for t in stream.tracks if t in self.spec.tracks)
        if not tracks:
            return  # none of its tracks in this stream: the plugin is never opened
        self._rate = getattr(self.plugin, "sample_rate", None) or stream.sample_rate
        self._in_rate = stream.sample_rate
        fmt: SampleFormat = getattr(self.plugin, "sample_format", "int16")
        self._converters = {t: TrackConverter(stream.sample_rate, self._rate, fmt) for t in tracks}
        if hasattr(self.plugin, "transcripts"):
            self._output = self._outputs.acquire(stream)
            self.plugin.transcripts = Transcripts(self._output, self.name)
        await self.plugin.open(dataclasses.replace(stream, tracks=tracks))

    def start_at(self, sample: int) -> None:
        """Begin at ``sample`` of the stream's clock instead of 0 (call after ``open``, before any ``write``).

        For a worker that resumes a stream another worker began: the audio
        before ``sample`` is not fed (no silence stands in for it), and block
        starts and transcript times stay on the stream's media clock.
        """
        self._next = sample
        for converter in self._converters.values():
            converter.position = round(sample * self._rate / self._in_rate)

    async def write(self, block: AudioBlock) -> None:
        if not self._converters:
            return
        gap = block.start - self._next
        channels = {}
        start = 0
        for track, converter in self._converters.items():
            samples = block.channels[track]
            if gap > 0:  # audio the fan-out lost for this sink: silence keeps the clock
                samples = np.concatenate([np.zeros(gap, dtype=np.int16), samples])
            start = converter.position
            out = converter.convert(samples)
            out.flags.writeable = False
            channels[track] = out
        self._next = block.end
        if len(next(iter(channels.values()))):
            await self.plugin.write(AudioBlock(start, self._rate, channels))
        if self._output is not None:
            self._output.advance(block.end / block.sample_rate)

    async def close(self, outcome: StreamOutcome) -> None:
        if not self._converters:
            return
        try:
            channels = {}
            start = 0
            for track, converter in self._converters.items():
                start = converter.position
                out = converter.flush()
                out.flags.writeable = False
                channels[track] = out
            if len(next(iter(channels.values()))):
                await self.plugin.write(AudioBlock(start, self._rate, channels))
            await self.plugin.close(outcome)
        finally:
            if self._output is not None:
                await self._outputs.release(self._output)


def plugin_sinks(settings: Any, *, on_transcript: Callable[[Transcript], None] | None = None) -> list[SinkFactory]:
    """Sink factories for the ``sinks`` setting (one ``PluginSink`` per stream and table).

    ``on_transcript`` is told every transcript event too (the call store's
    ``transcript_published``); it must return at once.

    Raises:
        ConfigError: An unknown plugin, a bad table or bad options.
    """
    specs = parse_specs(getattr(settings, "sinks", ()))
    if not specs:
        return []
    outputs = TranscriptOutputs(
        recordings_dir=settings.recordings_dir,
        callback_url=getattr(settings, "transcript_callback_url", None),
        on_event=on_transcript,
    )
    factories: list[SinkFactory] = []
    for spec in specs:
        cls = load_plugin(spec.plugin)
        build_plugin(cls, spec)  # fail at start-up, not on the first call

        def factory(info: StreamInfo, cls: type[Any] = cls, spec: SinkSpec = spec) -> Sink:
            return PluginSink(build_plugin(cls, spec), spec, outputs)

        factory.__name__ = spec.name
        factory.outputs = outputs  # type: ignore[attr-defined]
        factories.append(factory)
    return factories
