"""
Routes: a stream format fixed per path in the config (``[[routes]]``). Pure.

Outside ``platforms/`` so the config (and the simulator, which reads it) need
not import the parsers.

A route covers what detection cannot: FreeSWITCH ``mod_audio_fork`` sends
free-form metadata, so its format, rate and channel layout come from here;
and any format may be fixed for a path so a stream that does not fit it is
refused at its first message.

::

    [[routes]]
    path = "/fork"            # exact path; "/fork/*" matches every path under /fork/
    format = "audiofork"      # a receiver.events.Platform value
    sample_rate = 16000       # audiofork only: the rate uuid_audio_fork was started with
    mix = "stereo"            # audiofork only: mono | mixed | stereo
    stereo_channels = ["inbound", "outbound"]   # stereo formats: the track of each channel
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from receiver.errors import ConfigError
from receiver.events import Platform, Track

DEFAULT_STEREO: Final = (Track.INBOUND, Track.OUTBOUND)

# Rates of the raw L16 formats (binary frames, no per-frame timestamp): every rate
# the platforms name that is a whole number of samples per millisecond.
BINARY_L16_RATES: Final = frozenset({8000, 16000, 24000, 32000, 48000, 64000})


class Mix(enum.StrEnum):
    """How a raw L16 stream lays out a call's legs (jambonz ``mixType``, audio_fork's mix-type)."""

    MONO = "mono"  # one channel: the caller
    MIXED = "mixed"  # one channel: both legs mixed (recorded as the inbound track)
    STEREO = "stereo"  # two interleaved channels, one per leg


@dataclass(frozen=True, slots=True)
class Route:
    """The format of the streams on one path, and what that format cannot say itself."""

    path: str
    format: Platform
    sample_rate: int | None = None
    mix: Mix | None = None
    stereo_channels: tuple[Track, Track] = DEFAULT_STEREO

    def matches(self, path: str) -> bool:
        """Whether a request path (query ignored) is on this route."""
        path = path.split("?", 1)[0]
        if self.path.endswith("/*"):
            return path.startswith(self.path[:-1])
        return path == self.path


_KEYS: Final = frozenset({"path", "format", "sample_rate", "mix", "stereo_channels"})


def parse_routes(raw: Sequence[Any]) -> tuple[Route, ...]:
    """Validate the ``[[routes]]`` tables.

    Raises:
        ConfigError: A table is not one, has an unknown key or a bad value, or
            two routes share a path.
    """
    if isinstance(raw, Mapping) or not isinstance(raw, Sequence) or isinstance(raw, str):
        raise ConfigError("routes must be a list of tables ([[routes]])")
    routes: list[Route] = []
    for i, table in enumerate(raw):
        if isinstance(table, Route):
            routes.append(table)
            continue
        where = f"routes[{i}]"
        if not isinstance(table, Mapping):
            raise ConfigError(f"{where} must be a table")
        unknown = sorted(set(table) - _KEYS)
        if unknown:
            raise ConfigError(f"{where}: unknown key {unknown[0]} (known: {', '.join(sorted(_KEYS))})")
        path = table.get("path")
        if not isinstance(path, str) or not path.startswith("/"):
            raise ConfigError(f"{where}.path must be a path starting with /")
        try:
            fmt = Platform(str(table.get("format")))
        except ValueError:
            names = ", ".join(p.value for p in Platform)
            raise ConfigError(f"{where}.format must be one of {names}") from None
        rate = table.get("sample_rate")
        if rate is not None and (type(rate) is not int or rate not in BINARY_L16_RATES):
            rates = ", ".join(str(r) for r in sorted(BINARY_L16_RATES))
            raise ConfigError(f"{where}.sample_rate must be one of {rates}")
        mix = table.get("mix")
        try:
            mix = None if mix is None else Mix(mix)
        except ValueError:
            raise ConfigError(f"{where}.mix must be mono, mixed or stereo") from None
        channels = table.get("stereo_channels", [t.value for t in DEFAULT_STEREO])
        if (
            not isinstance(channels, (list, tuple))
            or sorted(channels) != sorted(t.value for t in DEFAULT_STEREO)
            or len(channels) != 2
        ):
            raise ConfigError(f'{where}.stereo_channels must be ["inbound", "outbound"] in either order')
        if (rate is not None or mix is not None) and fmt is not Platform.AUDIOFORK:
            raise ConfigError(f"{where}: sample_rate and mix apply to format audiofork only")
        routes.append(Route(path, fmt, rate, mix, (Track(channels[0]), Track(channels[1]))))
    paths = [r.path for r in routes]
    for path in paths:
        if paths.count(path) > 1:
            raise ConfigError(f"two routes for path {path}")
    return tuple(routes)


def route_for(routes: Sequence[Route], path: str | None) -> Route | None:
    """The route of a request path: an exact path first, then the longest ``/*`` prefix."""
    if not routes or path is None:
        return None
    bare = path.split("?", 1)[0]
    for route in routes:
        if route.path == bare:
            return route
    best: Route | None = None
    for route in routes:
        if route.path.endswith("/*") and route.matches(bare) and (best is None or len(route.path) > len(best.path)):
            best = route
    return best
