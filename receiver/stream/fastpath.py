"""
The receive fast path: whole text messages straight from ``data_received`` to the stream.

Part of the server's shell (only ``server.py`` uses it). ``websockets``
owns everything about the connection: the opening handshake (so
``process_request`` decides), control frames (pings, pongs, the closing
handshake), keepalive, shutdown, and every error and its close code. The one
kind of frame a media stream is made of skips websockets' generator-based
parser, its ``Assembler`` queue and the wake-up of the handler task to
``await recv()`` it: those cost more than everything the receiver does with
the message.

Each read goes to ``FrameReader.feed`` (the connection's ``data_received``:
asyncio and uvloop call it with no Python frame of the connection's own),
which cuts complete frames out of the bytes it is given, one
``speedups.next_frame`` call each (compiled: header, unmasking and UTF-8 in one
C call), straight from the read when no partial frame is held:

- a final, masked text frame within ``max_size`` whose payload is valid UTF-8
  (every message of a JSON media stream) is unmasked, decoded, and handed to
  the callback the handler attached,
  synchronously; a final, masked binary frame (the audio of Vonage, jambonz,
  audio_fork, Asterisk, AudioHook) is unmasked and handed over as ``bytes``;
- a control frame (ping, pong, close) is passed, whole, to websockets (the
  parser is always at a frame boundary, so its state stays right);
- anything else (a fragment, an unmasked frame, reserved
  bits, a frame over the size limit, invalid UTF-8, data after a close) ends
  the fast path for the connection: these bytes and all later ones go to
  websockets, and the handler goes back to ``async for message in ws``. So
  every error is detected, answered and closed by websockets itself.

The callback's result completes ``attach()``'s future: a value (the stream
stopped) or an exception (a protocol error, or a bug) ends dispatching;
later data frames are dropped (the stream is over, so nothing reads them),
control frames still reach websockets so the closing handshake completes.
The callback must not close the connection itself (it returns or raises, and
the handler closes): the connection's state is read once a read, and again
after each control frame, not once a frame.

``FrameReader`` holds the fast path's state and runs its loop. Where the
install compiled the media path, it is compiled from this file (a C class:
``fastpath.pxd`` declares its fields, receiver/mediaclock.pxd says how); the
connection class stays a Python subclass of websockets' own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Final

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosedOK
from websockets.protocol import Protocol, State

from receiver.speedups import CONTROL, DATA, NEED_MORE, next_frame

FALLBACK: Final = object()  # attach()'s future: go on with `async for message in ws`
# Read once per read: a lookup on the enum class goes through EnumType.__getattr__'s
# slot (about 200 instructions on CPython 3.11).
_OPEN: Final = State.OPEN


def state_attribute(protocol_class: type) -> str:
    """The attribute a reader reads its connection's state from, once a read.

    websockets' ``state`` is a property whose getter is ``return self._state``
    (websockets 15 to 17): a Python call, about 560 instructions, where the
    attribute itself costs about 100. So the reader reads ``_state`` when the
    class's ``state`` is a property whose getter reads nothing but ``_state``,
    and the public property otherwise (a websockets that computes its state
    some other way is read as it says).
    """
    for cls in protocol_class.__mro__:
        if "state" in vars(cls):
            getter = getattr(vars(cls)["state"], "fget", None)
            code = getattr(getter, "__code__", None)
            if code is not None and code.co_names == ("_state",) and code.co_argcount == 1:
                return "_state"
            break
    return "state"


class FastServerConnection(ServerConnection):
    """A ``ServerConnection`` that can hand text messages to a callback in ``data_received``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reader = FrameReader(self.protocol, super().data_received)
        # Every read goes straight to the reader: asyncio and uvloop look ``data_received`` up on
        # the instance (uvloop once, when the transport is made), so this attribute is what they call.
        self.data_received = self._reader.feed  # type: ignore[method-assign]

    def attach(self, on_text: Callable[[str | bytes], object]) -> asyncio.Future[object] | None:
        """Hand every later message to ``on_text`` (text as ``str``, binary as ``bytes``), in ``data_received``.

        ``on_text`` returns None to go on; anything else ends dispatching and
        completes the future with that value. An exception it raises ends
        dispatching and is set on the future. The future also completes when
        the connection closes (``None`` after a normal closure, the
        ``ConnectionClosed`` exception otherwise), or with ``FALLBACK`` when a
        frame needs websockets' own message path. ``on_text`` must not close
        the connection (the handler does, once the future completes).

        Returns None (use ``async for``) when the fast path cannot take over,
        because websockets already holds bytes of this connection.
        """
        reader = self._reader
        ws_reader = getattr(self.protocol, "reader", None)
        if not reader.fast or getattr(ws_reader, "buffer", None) or self.protocol.state is not _OPEN:
            reader.fast = False
            reader.flush_to_websockets()
            return None
        reader.on_text = on_text
        done: asyncio.Future[object] = self.loop.create_future()
        reader.done = done
        reader.dispatching = True
        if reader.buf:
            reader.consume(reader.buf)
        return done

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        done = self._reader.done
        if done is not None and not done.done():
            close_exc = self.protocol.close_exc
            if isinstance(close_exc, ConnectionClosedOK):
                done.set_result(None)
            else:
                done.set_exception(close_exc)


class FrameReader:
    """The fast path of one connection: its state, and the loop that cuts each read.

    Args:
        protocol: The connection's websockets protocol (its state and size limit).
        websockets_data_received: websockets' own ``data_received`` for the
            connection, which takes every byte the fast path does not.
    """

    __slots__ = (
        "buf",
        "dispatching",
        "done",
        "fast",
        "limit",
        "on_text",
        "protocol",
        "state_attr",
        "websockets_data_received",
    )

    def __init__(self, protocol: Protocol, websockets_data_received: Callable[[bytes], None]) -> None:
        self.protocol = protocol
        self.websockets_data_received = websockets_data_received
        self.buf = bytearray()  # the start of a frame an earlier read brought
        self.on_text: Callable[[str | bytes], object] | None = None
        self.done: asyncio.Future[object] | None = None
        self.fast = True  # until a frame the fast path does not take
        self.dispatching = False  # attached, and the callback has not ended the stream
        # websockets fixes the size limit when it makes the protocol: taken once, not once a read.
        max_size = protocol.max_message_size
        self.limit = -1 if max_size is None else max_size
        self.state_attr = state_attribute(type(protocol))

    def is_open(self) -> bool:
        """Whether the connection is open: websockets' ``state``, read as ``state_attribute`` says."""
        return getattr(self.protocol, self.state_attr) is _OPEN

    def feed(self, data: bytes) -> None:
        """One read's bytes (the connection's ``data_received``)."""
        if self.fast and self.is_open():
            if self.on_text is not None and not self.buf:
                self.consume(data)  # the common case: the read starts with a frame, cut from it (no copy)
            else:  # not attached yet, or the start of a frame came with an earlier read
                self.buf += data
                if self.on_text is not None:
                    self.consume(self.buf)
        elif self.buf:  # bytes held before the fast path ended: they come first
            self.buf += data
            self.flush_to_websockets()
        else:
            self.websockets_data_received(data)

    def flush_to_websockets(self) -> None:
        if self.buf:
            rest = bytes(self.buf)
            self.buf.clear()
            self.websockets_data_received(rest)

    def consume(self, buf: bytes | bytearray) -> None:
        """Cut every complete frame of ``buf`` (``self.buf``, or a read when nothing is held) and hold the rest.

        The caller has seen the connection open (``feed``, ``attach``). The state changes only
        as websockets handles a frame (a close) or the handler closes (never from within the
        callback): it is read again after each control frame, not once a frame.
        """
        pos = 0
        limit = self.limit
        on_text = self.on_text
        assert on_text is not None
        is_open = True
        while True:
            status, message, stop = next_frame(buf, pos, limit)
            if status == DATA:
                if not is_open:  # after a close: websockets' own handling
                    self._fall_back(buf, pos)
                    return
                if self.dispatching:
                    try:
                        result = on_text(message)  # type: ignore[arg-type]  # DATA: always a message
                    except Exception as exc:  # handed to the handler, which decides the close
                        self._finish(None, exc)
                    else:
                        if result is not None:
                            self._finish(result, None)
                # else: the stream ended; the handler is closing the connection: drop it.
                pos = stop
                if pos == len(buf):  # the read ended with this frame (in real time, every read does)
                    if buf is self.buf:
                        self.buf.clear()
                    return
            elif status == NEED_MORE and (is_open or len(buf) - pos < 2):
                self._keep(buf, pos)  # (after a close, a frame's start goes to websockets, below)
                return
            elif status == CONTROL and is_open:
                frame = bytes(buf[pos:stop])
                if buf is self.buf:
                    del self.buf[:stop]
                    pos = 0
                else:
                    pos = stop
                self.websockets_data_received(frame)
                is_open = self.is_open()
            else:  # fragments, unmasked frames, reserved bits, too big, not UTF-8 (1007), or after a close
                self._fall_back(buf, pos)
                return

    def _fall_back(self, buf: bytes | bytearray, pos: int) -> None:
        """From byte ``pos`` of ``buf`` on, everything goes to websockets (and the handler to ``async for``)."""
        self.fast = False
        self._keep(buf, pos)
        dispatching = self.dispatching
        self.dispatching = False
        done = self.done
        if dispatching and done is not None and not done.done():
            done.set_result(FALLBACK)
        self.flush_to_websockets()

    def _keep(self, buf: bytes | bytearray, pos: int) -> None:
        """Hold ``buf[pos:]`` for later: ``buf`` is ``self.buf`` or the read being cut."""
        if buf is self.buf:
            del self.buf[:pos]
        elif pos < len(buf):
            self.buf += memoryview(buf)[pos:]

    def _finish(self, result: object, exc: BaseException | None) -> None:
        self.dispatching = False
        done = self.done
        if done is not None and not done.done():
            if exc is not None:
                done.set_exception(exc)
            else:
                done.set_result(result)
