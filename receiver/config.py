"""
Settings: one frozen dataclass, read from defaults < config.toml < environment < flags.

``Settings.load`` is the only code that reads the environment or the config
file. Everything else receives ``Settings`` or the values it needs. TOML
sections only group keys: a key means the same field in any section.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from .errors import ConfigError

ENV_PREFIX = "RECEIVER_"
DEFAULT_CONFIG = "config.toml"


@dataclass(frozen=True, slots=True)
class Settings:
    # Server
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1

    # Recording
    recordings_dir: str = "recordings"
    wav: bool = True
    repair_on_start: bool = True

    # Media clock and buffers
    reorder_window_ms: int = 100
    max_gap_ms: int = 30_000
    buffer_seconds: float = 10.0
    sink_close_timeout: float = 10.0

    # Limits
    max_message_bytes: int = 65_536

    # Performance
    fast_path: bool = True  # text frames go straight from data_received to the stream (receiver/fastpath.py)

    # Logging
    log_format: str = "auto"  # auto (console on a terminal, else JSON), json, console
    log_level: str = "info"
    media_summary_seconds: float = 10.0

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be 0-65535, not {self.port}")
        if self.workers < 1:
            raise ConfigError("workers must be at least 1")
        if self.reorder_window_ms < 0 or self.reorder_window_ms > 5_000:
            raise ConfigError("reorder_window_ms must be 0-5000")
        if self.max_gap_ms <= 0:
            raise ConfigError("max_gap_ms must be positive")
        if self.buffer_seconds * 1000 < 2 * self.reorder_window_ms or self.buffer_seconds > 600:
            raise ConfigError("buffer_seconds must hold two reorder windows and at most 600 s")
        if self.max_message_bytes < 1024:
            raise ConfigError("max_message_bytes must be at least 1024")
        if self.log_format not in ("auto", "json", "console"):
            raise ConfigError("log_format must be auto, json or console")
        if self.media_summary_seconds <= 0:
            raise ConfigError("media_summary_seconds must be positive")

    @classmethod
    def load(
        cls,
        config: str | os.PathLike[str] | None = None,
        *,
        env: Mapping[str, str] | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> Settings:
        """Build settings from the config file, the environment and explicit overrides.

        ``config`` defaults to ``$RECEIVER_CONFIG``, then ``./config.toml`` if present.

        Raises:
            ConfigError: A file, variable or value is invalid.
        """
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        path = config or env.get(ENV_PREFIX + "CONFIG")
        if path is None and Path(DEFAULT_CONFIG).is_file():
            path = DEFAULT_CONFIG
        if path is not None:
            values.update(_from_toml(Path(path)))
        types = {f.name: f.type for f in fields(cls)}
        for name, kind in types.items():
            raw = env.get(ENV_PREFIX + name.upper())
            if raw is not None:
                values[name] = _convert(name, str(kind), raw)
        for name, value in (overrides or {}).items():
            if value is not None:
                values[name] = value
        try:
            return cls(**values)
        except TypeError as exc:
            raise ConfigError(str(exc)) from None

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


_TOML_TYPES: dict[str, type | tuple[type, ...]] = {"int": int, "float": (int, float), "bool": bool, "str": str}


def _from_toml(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    known = {f.name: str(f.type) for f in fields(Settings)}
    values: dict[str, Any] = {}

    def take(key: str, value: Any, where: str) -> None:
        if key not in known:
            raise ConfigError(f"{path}: unknown setting {where}{key}")
        kind = known[key]
        expected = _TOML_TYPES.get(kind)
        if expected is not None and (not isinstance(value, expected) or (kind != "bool" and isinstance(value, bool))):
            raise ConfigError(f"{path}: {where}{key} must be a {kind}, not {type(value).__name__}")
        values[key] = float(value) if kind == "float" else value

    for key, value in data.items():
        if isinstance(value, dict):
            for sub, subvalue in value.items():
                take(sub, subvalue, f"[{key}] ")
        else:
            take(key, value, "")
    return values


def _convert(name: str, kind: str, raw: str) -> Any:
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "bool":
            lowered = raw.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
    except ValueError:
        raise ConfigError(f"{ENV_PREFIX}{name.upper()} must be a {kind}, not {raw!r}") from None
    return raw
