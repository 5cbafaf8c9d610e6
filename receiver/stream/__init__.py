"""
Stream I/O: the only code that touches a stream's socket, and what runs beside it per stream.

``server`` accepts connections and runs the receive loop; ``fastpath`` cuts
media frames without a JSON parse; ``handler`` keeps each connection's state
and takes its common media message from frame to ring write; ``pipeline`` carries one stream's events
through the codec, the media clock and the ring buffers to ``fanout``, which
feeds each sink at its own pace; ``observers`` are told when streams start
and end. The pure core (``receiver.session``, ``receiver.platforms``, ...)
knows nothing of this package.
"""
