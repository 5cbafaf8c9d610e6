"""
The media path's two innermost loops, compiled where they could be (``receiver/_native.pyx``).

``pip install`` (and so ``make install``, ``make run`` and the Docker image)
compiles the extension with Cython when a C compiler is there; without one
the install still succeeds, and the same functions run as pure Python
(``receiver/_pure.py``). ``RECEIVER_PURE_PYTHON=1`` asks for the pure-Python
build on a machine that has both: ``make test-pure`` runs the suite so.
``COMPILED`` says which one runs (``receiver --version`` prints it too).
"""

from __future__ import annotations

import os

_PURE_REQUESTED = os.environ.get("RECEIVER_PURE_PYTHON", "") not in ("", "0")

if not _PURE_REQUESTED:
    try:
        from receiver._native import BAD_UTF8, CONTROL, DATA, NEED_MORE, OTHER, next_frame, ring_write
    except ImportError:  # not compiled at install time (no C compiler)
        COMPILED = False
    else:
        COMPILED = True
else:
    COMPILED = False
if not COMPILED:
    from receiver._pure import BAD_UTF8, CONTROL, DATA, NEED_MORE, OTHER, next_frame, ring_write

__all__ = ["BAD_UTF8", "COMPILED", "CONTROL", "DATA", "NEED_MORE", "OTHER", "next_frame", "ring_write"]
