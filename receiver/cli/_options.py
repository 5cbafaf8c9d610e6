"""
Options more than one command shares, and the settings they build.
"""

from __future__ import annotations

import argparse

from receiver.config import Settings

CONFIG_HELP = "path to config.toml (default: $RECEIVER_CONFIG or ./config.toml)"
LOG_FORMATS = ["auto", "json", "console"]
LOG_LEVELS = ["debug", "info", "warning", "error"]
LOOPS = ["auto", "uvloop", "asyncio"]

# Settings a command line may override, by the attribute argparse gives them.
_OVERRIDES = (
    "host",
    "port",
    "recordings_dir",
    "workers",
    "log_format",
    "log_level",
    "webhook_host",
    "webhook_port",
    "webhooks",
    "database",
    "bus_url",
    "worker_name",
    "worker_streams",
)


def add_runtime(parser: argparse.ArgumentParser) -> None:
    """``--log-format``, ``--log-level`` and ``--loop``: how a long-running command runs."""
    parser.add_argument("--log-format", choices=LOG_FORMATS)
    parser.add_argument("--log-level", choices=LOG_LEVELS)
    parser.add_argument("--loop", choices=LOOPS, default="auto")


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The settings from ``--config`` (or the environment), with the command line's overrides on top."""
    overrides = {key: getattr(args, key, None) for key in _OVERRIDES}
    return Settings.load(args.config, overrides=overrides)
