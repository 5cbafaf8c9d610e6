"""receiver: a WebSocket media-stream receiver for MiniVoice and Twilio-format streams."""

import os as _os

__version__ = "0.1.0"

# Modules that ``pip install`` also compiles from their own source (setup.py; the ``.pxd`` beside
# each declares what becomes C). Where both are installed, Python imports the compiled one.
COMPILED_SOURCES = (
    "receiver.counters",
    "receiver.mediaclock",
    "receiver.platforms._typed",
    "receiver.platforms.minivoice",
    "receiver.ringbuffer",
    "receiver.session",
    "receiver.stream.fastpath",
    "receiver.stream.handler",
    "receiver.stream.pipeline",
)

if _os.environ.get("RECEIVER_PURE_PYTHON", "") not in ("", "0"):
    # The pure-Python build asked for on a machine that has both (``make test-pure``): those
    # modules from their ``.py`` (receiver/speedups.py chooses for its own the same way).
    import importlib.util as _util
    import sys as _sys
    from importlib.abc import MetaPathFinder as _Finder

    class _SourceFirst(_Finder):
        def find_spec(self, name, path, target=None):  # type: ignore[no-untyped-def]
            if name not in COMPILED_SOURCES:
                return None
            source = _os.path.join(__path__[0], *name.split(".")[1:]) + ".py"
            return _util.spec_from_file_location(name, source)

    _sys.meta_path.insert(0, _SourceFirst())
