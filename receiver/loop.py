"""
The event loop to run on, chosen in one place.

Library code never imports uvloop: the commands pick the loop here (uvloop
when installed, asyncio otherwise), as uvicorn's ``loops/auto.py`` does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


def loop_factory(name: str = "auto") -> Callable[[], asyncio.AbstractEventLoop]:
    """The event loop to run on: ``uvloop``, ``asyncio``, or ``auto`` (uvloop if installed)."""
    if name in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if name == "uvloop":
                raise
        else:
            return uvloop.new_event_loop
    return asyncio.new_event_loop
