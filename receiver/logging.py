"""
structlog configuration, done once: JSON lines in production, console on a terminal.

Logger names keep the logs apart: ``receiver.stream`` (stream lifecycle),
``receiver.media`` (media statistics), ``receiver.server`` (start-up and
shutdown), and a name of its own for every later concern (webhooks, the
answer_url, transcripts).
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TypeAlias, cast

import structlog
from structlog.typing import FilteringBoundLogger

Logger: TypeAlias = FilteringBoundLogger
"""What ``get_logger`` returns and ``bind`` keeps: ``info``, ``warning``, ``error``... with key-value fields."""

STREAM = "receiver.stream"
MEDIA = "receiver.media"
SERVER = "receiver.server"


def configure(*, fmt: str = "auto", level: str = "info") -> None:
    """Configure structlog for the process (``fmt``: auto, json or console)."""
    console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    renderer: Any = structlog.dev.ConsoleRenderer() if console else structlog.processors.JSONRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        # One write per line (print writes the text and the newline apart): with --workers,
        # every process writes to the same stderr, and lines must not interleave.
        logger_factory=structlog.WriteLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> Logger:
    """A logger whose every line carries ``logger_name=name``."""
    return cast(Logger, structlog.get_logger(logger_name=name))
