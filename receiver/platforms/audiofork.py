"""
FreeSWITCH ``mod_audio_fork`` (subprotocol ``audio.drachtio.org``) and
``mod_audio_stream``. Pure.

``uuid_audio_fork <uuid> start <url> <mix-type> <sampling-rate> [metadata]``
opens the socket, sends the metadata (free-form text, usually JSON) as one
text frame when there is any, then **binary** frames of raw little-endian
L16: ``mono`` (the caller), ``mixed`` (both legs in one channel, recorded as
the inbound track) or ``stereo`` (two interleaved channels), at 8 or 16 kHz
(``shared/reference/stream-formats.md`` section 8). The stream ends when the
socket closes.

Nothing on the wire names the format, the rate or the mix, so an audio_fork
stream is chosen by a route (``[[routes]] format = "audiofork"``, with
``sample_rate`` and ``mix``; defaults 8000 and mono) or by its subprotocol.
A stream starts at its first frame: the metadata if there is one (a JSON
object's ``callSid`` / ``call_id`` / ``uuid`` names the call, its
``stream_id`` the stream, and its string values become custom parameters; other text is kept as the ``metadata``
parameter), else the first audio frame.

Unconfirmed: the stereo channel order (channel 0 read as the caller unless
the route's ``stereo_channels`` says otherwise; logged).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import orjson

from receiver.errors import UnknownEvent
from receiver.events import Event, MediaFormat, Platform, StreamStarted, Track
from receiver.platforms._common import binary_l16_format, first_str, string_values
from receiver.platforms.jambonz import tracks_for
from receiver.routes import Mix, Route

SUBPROTOCOL: Final = "audio.drachtio.org"
DEFAULT_RATE: Final = 8000
MAX_METADATA_PARAMETER: Final = 512
CALL_ID_KEYS: Final = ("callSid", "call_sid", "call_id", "callId", "uuid")


def started(route: Route | None, metadata: str | None = None) -> StreamStarted:
    """The stream's start, from the route and the metadata frame (None: no metadata)."""
    mix = route.mix if route is not None and route.mix is not None else Mix.MONO
    rate = route.sample_rate if route is not None and route.sample_rate is not None else DEFAULT_RATE
    fmt: MediaFormat = binary_l16_format(rate)
    channels = tracks_for(mix, route)
    readings = {"mix": mix.value, "sample_rate": "route" if route is not None and route.sample_rate else "default"}
    if mix is Mix.STEREO:
        readings["stereo_channels"] = ",".join(t.value for t in channels) + (
            " (route)" if route is not None else " (assumed)"
        )
    parameters: dict[str, str] = {}
    call_id = None
    if metadata is None:
        readings["metadata"] = "none"
    else:
        try:
            value = orjson.loads(metadata)
        except orjson.JSONDecodeError:
            value = None
        if isinstance(value, Mapping):
            parameters = string_values(value, "metadata")
            call_id = first_str(value, *CALL_ID_KEYS)
            readings["metadata"] = "json"
        else:
            parameters = {"metadata": metadata[:MAX_METADATA_PARAMETER]}
            readings["metadata"] = "text"
    return StreamStarted(
        platform=Platform.AUDIOFORK,
        # None on the wire: the metadata may name it, else the session (after the connection).
        stream_id=parameters.get("stream_id", "") if readings["metadata"] == "json" else "",
        call_id=call_id or "",
        tracks=tuple(t for t in Track if t in channels),
        media_format=fmt,
        custom_parameters=parameters,
        readings=readings,
        binary_channels=channels,
    )


def parse_text(text: str, route: Route | None = None, *, first: bool = False) -> Event | None:
    """Translate one audio_fork text frame: the first is the metadata (``StreamStarted``).

    Raises:
        UnsupportedEncoding: The route's rate cannot be taken (validated with the config).
        UnknownEvent: A text frame after the metadata (audio_fork sends none).
    """
    if first:
        return started(route, text)
    raise UnknownEvent("text")
