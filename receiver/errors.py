"""
Everything the receiver raises on purpose, and every close code it sends.

Every exception raised on purpose derives from ``ReceiverError``; the ones
that end a stream carry the close code they suggest (``server.py`` alone
closes). Where a class lives, when not here, is in brackets::

    ReceiverError
     ├── StreamProtocolError          the peer sent what we cannot accept; the stream ends
     │    ├── MalformedMessage        bad JSON, a known event with missing or wrong fields,
     │    │    │                      bad base64, a binary frame            → 4400
     │    │    └── FormatMismatch     fits no stream format (or not the route's);
     │    │                           the close reason names what was expected → 4400
     │    ├── UnexpectedEvent         an event the lifecycle does not allow now
     │    │                           (media before start, a second start)  → 4409
     │    ├── UnsupportedEncoding     a media format we cannot decode      → 4415
     │    ├── MediaAheadOfClock       media time ran ahead of wall time    → 4425
     │    ├── StreamRefused           authentication or policy refused it  → 1008
     │    └── LimitExceeded           [security.limits] over a limit: 4429 rate,
     │                                4408 idle or no start, 1008 duration, 1013 capacity
     ├── UnknownEvent                 an event type we do not know: counted and skipped
     ├── SinkStopped                  a sink stopped at a limit (disk, a recording's size):
     │                                a warning; the stream goes on
     ├── AuthRejected                 [security.auth] the upgrade is refused: HTTP 401 / 403
     ├── TokenInvalid                 [security.auth] a stream token is malformed, forged,
     │                                expired or for another call
     ├── SignatureInvalid             [security.signatures] a carrier's signature on the upgrade
     │                                (Plivo, Vonage JWT, AudioHook) does not verify
     ├── WebhookRejected              [calls.webhooks] a request on the webhook port is
     │    │                           refused: an HTTP status and a JSON error body
     │    ├── MalformedJSON           400
     │    ├── TooDeeplyNested         400: JSON nested deeper than the store can write back
     │    ├── InvalidQuery            400
     │    ├── Unauthorized            401
     │    ├── NotFound                404
     │    ├── MethodNotAllowed        405
     │    ├── BodyTooLarge            413
     │    ├── UnsupportedContentType  415
     │    ├── InvalidEnvelope         422
     │    ├── StoreUnavailable        503 (the platform retries)
     │    ├── InvalidControl          [calls.control] 400: a stream update the API refuses
     │    ├── NoStreams               [calls.control] 503: no stream server to control
     │    └── RecordingUnreadable     [console] 422: a recording the console cannot read
     ├── RecordingError               [calls.media] a recording cannot be read as we write WAVs
     ├── InvalidActions               [calls.actions] an answer_url payload the platform rejects
     ├── BadEntry                     [bus] an audio-bus entry this version cannot read
     ├── AnswerUrlError               [simulator.http] the answer_url did not answer 2xx
     ├── AudioError                   [simulator.audio] an audio source cannot be read
     ├── ApiError                     [simulator.api] the simulated REST API refuses a request
     ├── ReplyMissing                 [simulator.runner] the receiver did not answer what its
     │                                format requires (AudioHook's opened, closed)
     ├── ConfigError                  the configuration is invalid
     │    └── NoRecordings            [transcription.batch] a call to transcribe has no recordings
     ├── ListenError                  a listening socket could not be opened
     └── InvalidValue                 an argument out of range (also a ``ValueError``)

Close reasons stay short and never carry secrets or payload bytes. The close
codes, with what each means, are tabled in ``docs/architecture.md`` (a test
holds the table to ``CloseCode``).
"""

from __future__ import annotations

import enum
import os
from typing import ClassVar

__all__ = [
    "CloseCode",
    "ConfigError",
    "FormatMismatch",
    "InvalidValue",
    "ListenError",
    "MalformedMessage",
    "MediaAheadOfClock",
    "ReceiverError",
    "SinkStopped",
    "StreamProtocolError",
    "StreamRefused",
    "UnexpectedEvent",
    "UnknownEvent",
    "UnsupportedEncoding",
]


class CloseCode(enum.IntEnum):
    """Every close code the receiver sends or acts on.

    RFC 6455's where one fits (the values of ``websockets.frames.CloseCode``);
    our own in the private range 4000-4999, numbered 4000 + the HTTP status
    that says the same.
    """

    NORMAL_CLOSURE = 1000
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    MALFORMED_MESSAGE = 4400
    TIMEOUT = 4408
    UNEXPECTED_EVENT = 4409
    UNSUPPORTED_ENCODING = 4415
    MEDIA_AHEAD_OF_CLOCK = 4425  # HTTP 425 Too Early: audio sent faster than real time, or timestamps that jump ahead
    RATE_LIMITED = 4429


class ReceiverError(Exception):
    """Base class for everything the receiver raises on purpose."""


class StreamProtocolError(ReceiverError):
    """The platform sent something we cannot accept; the stream must end."""

    close_code: ClassVar[CloseCode] = CloseCode.MALFORMED_MESSAGE
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


class MediaAheadOfClock(StreamProtocolError):
    close_code = CloseCode.MEDIA_AHEAD_OF_CLOCK
    kind = "media_ahead_of_clock"


class StreamRefused(StreamProtocolError):
    close_code = CloseCode.POLICY_VIOLATION
    kind = "policy_violation"


class UnknownEvent(ReceiverError):
    """An event type no parser knows. The session counts it and goes on."""

    def __init__(self, event: object) -> None:
        super().__init__(f"unknown event {event!r}")
        self.event = event


class SinkStopped(ReceiverError):
    """A sink stopped on purpose, at a limit (``reason``); logged as a warning, not a failure."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class ConfigError(ReceiverError):
    """The configuration is invalid; the message says which setting and why."""


class ListenError(ReceiverError):
    """A listening socket could not be opened; the message says which setting and why."""

    @classmethod
    def from_os_error(cls, what: str, host: str, port: int, settings: str, exc: OSError) -> ListenError:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        return cls(f"cannot listen for {what} on {host}:{port} ({settings}): {reason}")


class InvalidValue(ReceiverError, ValueError):
    """An argument out of range; the message names it. A ``ValueError`` too, as Python code expects."""
