"""
Options more than one command shares, and the settings they build.
"""

from __future__ import annotations

import argparse
import os
import textwrap
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING
from urllib.parse import quote

from receiver.config import ENV_PREFIX, Settings
from receiver.errors import ConfigError

if TYPE_CHECKING:
    import asyncio

CONFIG_HELP = (
    "path to config.toml (default: $RECEIVER_CONFIG, else ./config.toml if there); "
    "relative paths in it are taken from its directory"
)
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
    "insecure_webhooks",
    "database",
    "bus_url",
    "worker_name",
    "worker_streams",
)


def describe(text: str) -> str:
    """A command's description, wrapped (its parser keeps the examples' own line breaks)."""
    return textwrap.fill(text, 79)


def add_runtime(parser: argparse.ArgumentParser) -> None:
    """``--log-format``, ``--log-level`` and ``--loop``: how a long-running command runs."""
    parser.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        help="log lines as JSON or for people (default auto: console on a terminal, JSON otherwise)",
    )
    parser.add_argument("--log-level", choices=LOG_LEVELS, help="the least severe level logged (default info)")
    parser.add_argument(
        "--loop", choices=LOOPS, default="auto", help="event loop (default auto: uvloop when installed, else asyncio)"
    )


def run_until_signalled(args: argparse.Namespace, main: Callable[[Settings, asyncio.Event], Awaitable[None]]) -> int:
    """A long-running command: its settings, its logging, then ``main`` on ``--loop`` until SIGTERM or SIGINT.

    ``main`` gets the event those signals set, and returns when it has stopped cleanly.
    """
    import asyncio
    import signal

    from receiver.logging import configure
    from receiver.loop import loop_factory

    settings = settings_from_args(args)
    configure(fmt=settings.log_format, level=settings.log_level)

    async def until_signalled() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await main(settings, stop)

    with asyncio.Runner(loop_factory=loop_factory(args.loop)) as runner:
        runner.run(until_signalled())
    return 0


def where_from(settings: Settings, name: str, given: str | None = None) -> str:
    """Where a path setting came from, for a message that names the path tried."""
    if given is not None:
        return "given on the command line"
    if ENV_PREFIX + name.upper() in os.environ:
        return f"from ${ENV_PREFIX}{name.upper()}"
    if settings.config_file:
        return f"{name} in {settings.config_file}"
    return f"the default {name}; no config file here: pass --config or set ${ENV_PREFIX}CONFIG"


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The settings from ``--config`` (or the environment), with the command line's overrides on top."""
    overrides = {key: getattr(args, key, None) for key in _OVERRIDES}
    return Settings.load(args.config, overrides=overrides)


# Placeholders a flow file (and a URL option) may use for the local receiver, so a
# flow follows the ports config.toml and RECEIVER_PORT / RECEIVER_WEBHOOK_PORT choose.
PLACEHOLDERS = ("{receiver}", "{webhooks}")
PLACEHOLDER_HELP = (
    "{receiver} and {webhooks} in it stand for the local receiver's stream and webhook addresses "
    "(host:port from config.toml and RECEIVER_PORT / RECEIVER_WEBHOOK_PORT)"
)


def has_placeholders(text: str) -> bool:
    return any(p in text for p in PLACEHOLDERS)


def local_addresses(settings: Settings) -> dict[str, str]:
    """``{receiver}`` and ``{webhooks}``: where a client on this machine reaches the configured receiver.

    Raises:
        ConfigError: A port is 0 (any free port), so no address can be known beforehand.
    """

    def address(host: str, port: int, setting: str) -> str:
        if port == 0:
            raise ConfigError(f"{setting} is 0 (any free port): set a fixed port to use {{receiver}} or {{webhooks}}")
        if host in ("", "0.0.0.0"):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    return {
        "{receiver}": address(settings.host, settings.port, "port"),
        "{webhooks}": address(settings.webhook_host, settings.webhook_port, "webhook_port"),
    }


def expand_placeholders(text: str, settings: Settings) -> str:
    """``text`` with ``{receiver}`` and ``{webhooks}`` replaced by the local receiver's addresses."""
    if not has_placeholders(text):
        return text
    for placeholder, value in local_addresses(settings).items():
        text = text.replace(placeholder, value)
    return text


def local_webhook_url(settings: Settings) -> str | None:
    """The local receiver's webhook URL (its secret and basic-auth user included), or None when it takes none."""
    if not settings.webhooks:
        return None
    address = local_addresses(settings)["{webhooks}"]
    userinfo = f"{quote(settings.webhook_user)}:{quote(settings.webhook_password)}@" if settings.webhook_user else ""
    path = f"/webhooks/{quote(settings.webhook_secret)}" if settings.webhook_secret else "/webhooks"
    return f"http://{userinfo}{address}{path}"


INSECURE_HINT = " (ws:// is for local testing only: pass --allow-insecure)"


def insecure_hint(reason: str, allow_insecure: bool) -> str:
    """The refusal's reason, with how to accept ws:// when that is what was refused."""
    return reason + INSECURE_HINT if not allow_insecure and "must be a wss:// URL" in reason else reason
