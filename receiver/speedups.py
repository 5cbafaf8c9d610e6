"""
The media path's two innermost loops, compiled where they could be (``receiver/_native.pyx``).

``pip install`` (and so ``make install``, ``make run`` and the Docker image)
compiles the extension with Cython when a C compiler is there; without one
the install still succeeds, and the same functions run as pure Python
(``receiver/_pure.py``). ``RECEIVER_PURE_PYTHON=1`` asks for the pure-Python
build on a machine that has both: ``make test-pure`` runs the suite so.
``COMPILED`` says which one runs; ``build()`` says it of the whole media path,
this extension and the modules compiled from their own source
(``receiver.COMPILED_SOURCES``), as ``receiver --version`` and the
``server_started`` log line print it.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os

import receiver

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


def _compiled_file(name: str) -> str | None:
    """Where module ``name`` is compiled, if it is what an import would load (found, not imported)."""
    spec = importlib.util.find_spec(name)
    origin = spec.origin if spec is not None else None
    return origin if origin and origin.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)) else None


def compiled_sources() -> dict[str, bool]:
    """Each of ``receiver.COMPILED_SOURCES``: whether it runs compiled here."""
    return {name: _compiled_file(name) is not None for name in receiver.COMPILED_SOURCES}


def stale_builds() -> list[str]:
    """The compiled modules of ``receiver.COMPILED_SOURCES`` older than their own ``.py``.

    Python imports such a module in preference to its source, so after an edit to the
    ``.py`` the old build runs until the install compiles it again (the test suite refuses
    to start so; ``make`` compiles again).
    """
    stale = []
    for name in receiver.COMPILED_SOURCES:
        compiled = _compiled_file(name)
        if compiled is None:
            continue
        source = os.path.join(os.path.dirname(compiled), name.rpartition(".")[2] + ".py")
        if os.path.exists(source) and os.path.getmtime(source) > os.path.getmtime(compiled):
            stale.append(name)
    return stale


def build() -> str:
    """``compiled``, ``pure Python``, or ``partly compiled (pure: ...)``: what runs the media path."""
    parts = {"receiver._native": COMPILED, **compiled_sources()}
    if all(parts.values()):
        return "compiled"
    if not any(parts.values()):
        return "pure Python"
    return f"partly compiled (pure: {', '.join(name for name, on in parts.items() if not on)})"


__all__ = [
    "BAD_UTF8",
    "COMPILED",
    "CONTROL",
    "DATA",
    "NEED_MORE",
    "OTHER",
    "build",
    "compiled_sources",
    "stale_builds",
    "next_frame",
    "ring_write",
]
