"""
Everything the receiver raises on purpose, and the one map from error to close.

::

    ReceiverError
     ├── StreamProtocolError          the peer sent what we cannot accept; the stream ends
     │    ├── MalformedMessage        bad JSON, a known event with missing or wrong fields,
     │    │    │                      bad base64, a binary frame           → 4400
     │    │    └── FormatMismatch     fits no stream format (or not the route's);
     │    │                           the close reason names what was expected → 4400
     │    ├── UnexpectedEvent         an event the lifecycle does not allow now
     │    │                           (media before start, a second start) → 4409
     │    ├── UnsupportedEncoding     a media format we cannot decode     → 4415
     │    └── StreamRefused           authentication or policy refused it → 1008
     ├── UnknownEvent                 an event type we do not know: counted and skipped
     ├── SinkError                    a sink failed; never ends a stream
     └── ConfigError                  the configuration is invalid

The exception suggests a close code; ``server.py`` alone decides to close.
Close reasons stay short and never carry secrets or payload bytes.
"""

from __future__ import annotations

import enum
import os
from typing import ClassVar

from websockets.frames import CloseCode as StandardCloseCode

__all__ = [
    "CloseCode",
    "ConfigError",
    "FormatMismatch",
    "MalformedMessage",
    "ReceiverError",
    "SinkError",
    "StandardCloseCode",
    "StreamProtocolError",
    "StreamRefused",
    "UnexpectedEvent",
    "UnknownEvent",
    "UnsupportedEncoding",
]


class CloseCode(enum.IntEnum):
    """Our application close codes (RFC 6455 private range 4000-4999), 4000 + HTTP status."""

    MALFORMED_MESSAGE = 4400
    UNEXPECTED_EVENT = 4409
    UNSUPPORTED_ENCODING = 4415


class ReceiverError(Exception):
    """Base class for everything the receiver raises on purpose."""


class StreamProtocolError(ReceiverError):
    """The platform sent something we cannot accept; the stream must end."""

    close_code: ClassVar[int] = CloseCode.MALFORMED_MESSAGE
    kind: ClassVar[str] = "protocol_error"

    @property
    def close_reason(self) -> str:
        """A short reason for the close frame (at most 123 bytes, no details)."""
        return self.kind.replace("_", " ")


class MalformedMessage(StreamProtocolError):
    close_code = CloseCode.MALFORMED_MESSAGE
    kind = "malformed_message"


class FormatMismatch(MalformedMessage):
    """The first message(s) fit no stream format we speak, or not the one the route fixes.

    ``expected`` is ours (never peer data), so it can go in the close reason;
    the message (the log's detail) may describe what arrived.
    """

    kind = "format_mismatch"

    def __init__(self, expected: str, detail: str) -> None:
        super().__init__(detail)
        self.expected = expected

    @property
    def close_reason(self) -> str:
        return ("expected " + self.expected).encode()[:123].decode("ascii", "ignore")


class UnexpectedEvent(StreamProtocolError):
    close_code = CloseCode.UNEXPECTED_EVENT
    kind = "unexpected_event"


class UnsupportedEncoding(StreamProtocolError):
    close_code = CloseCode.UNSUPPORTED_ENCODING
    kind = "unsupported_encoding"


class StreamRefused(StreamProtocolError):
    close_code = StandardCloseCode.POLICY_VIOLATION
    kind = "policy_violation"


class UnknownEvent(ReceiverError):
    """An event type no parser knows. The session counts it and goes on."""

    def __init__(self, event: object) -> None:
        super().__init__(f"unknown event {event!r}")
        self.event = event


class SinkError(ReceiverError):
    """A sink failed. Sinks are disabled on failure; the stream goes on."""


class ConfigError(ReceiverError):
    """The configuration is invalid; the message says which setting and why."""


class ListenError(ReceiverError):
    """A listening socket could not be opened; the message says which setting and why."""

    @classmethod
    def from_os_error(cls, what: str, host: str, port: int, settings: str, exc: OSError) -> ListenError:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        return cls(f"cannot listen for {what} on {host}:{port} ({settings}): {reason}")
