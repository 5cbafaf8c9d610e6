"""
Settings: one frozen dataclass, read from defaults < config.toml < environment < flags.

``Settings.load`` is the only code that reads the environment or the config
file. Everything else receives ``Settings`` or the values it needs. TOML
sections only group keys: a key means the same field in any section, except
that a key ``k`` in section ``[s]`` is the field ``s_k`` where one exists
(``[bus] url`` is ``bus_url``, the variable ``RECEIVER_BUS_URL``).
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from receiver.errors import ConfigError
from receiver.routes import parse_routes
from receiver.security.networks import parse_networks

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

    # Transcription plugins ([[sinks]] tables: plugin, name, tracks, options; see receiver.transcription)
    sinks: tuple[Any, ...] = ()
    transcript_callback_url: str = ""  # POST every transcript event here (JSON); empty: none

    # Stream formats fixed per path ([[routes]] tables: path, format, sample_rate, mix, stereo_channels;
    # see docs/platforms.md). Other paths: the format is detected from the first message.
    routes: tuple[Any, ...] = ()

    # Authentication (see docs/security.md); lists: TOML arrays or comma-separated env values
    auth_secrets: tuple[str, ...] = field(default=(), repr=False)  # stream-token HMAC keys; the first signs
    auth_token_param: str = "token"  # query parameter and start custom parameter carrying the token
    auth_start_token: bool = True  # accept the token in the start message when the URL has none
    auth_bearer_tokens: tuple[str, ...] = field(default=(), repr=False)
    auth_basic_users: tuple[str, ...] = field(default=(), repr=False)  # "user:password"
    twilio_auth_token: str = field(default="", repr=False)  # validates X-Twilio-Signature when present
    public_base_url: str = ""  # wss://host as the platform sees it (behind a proxy); default: wss://<Host>
    ip_allowlist: tuple[str, ...] = ()  # CIDRs; empty: any address
    trusted_proxies: tuple[str, ...] = ()  # CIDRs whose X-Forwarded-For is believed

    # Connection limits (0 switches a time or rate limit off)
    max_streams: int = 1000  # concurrent streams: 503 at the handshake, 1013 when over after it
    handshake_timeout: float = 10.0
    idle_timeout: float = 60.0  # no message for this long: close 4408
    start_timeout: float = 10.0  # no start message this long after the upgrade: close 4408
    max_stream_seconds: float = 14_400.0  # close 1008 after this long
    max_messages_per_second: float = 1000.0  # averaged over rate_window: close 4429
    rate_window: float = 10.0

    # Graceful drain (SIGTERM)
    drain_timeout: float = 30.0  # streams may run this long after SIGTERM, then close 1012

    # TLS: serve wss:// directly when both are set
    tls_certfile: str = ""
    tls_keyfile: str = ""
    tls_key_password: str = field(default="", repr=False)

    # Performance
    fast_path: bool = True  # text frames go straight from data_received to the stream (receiver/stream/fastpath.py)

    # Logging
    log_format: str = "auto"  # auto (console on a terminal, else JSON), json, console
    log_level: str = "info"
    media_summary_seconds: float = 10.0

    # Webhooks and call records
    webhooks: bool = True  # `receiver serve` also runs the webhook listener
    webhook_host: str = "127.0.0.1"
    webhook_port: int = 8081
    database: str = "receiver.db"  # the call records: a SQLite file (WAL mode) or a postgresql:// URL
    webhook_secret: str = field(default="", repr=False)  # token in the URL: /webhooks/<secret> or ?token=<secret>
    webhook_user: str = ""  # HTTP basic auth, with webhook_password
    webhook_password: str = field(default="", repr=False)
    webhook_max_body_bytes: int = 65_536
    store_timeout: float = 5.0  # seconds a store write may take before the webhook gets a 503
    answer: bool = False  # POST /answer on the webhook port
    answer_actions: str = ""  # the JSON action list /answer returns: {"actions": [...]}
    answer_allow_ws: bool = False  # accept ws:// stream URLs in answer_actions (local testing only)

    # Audio bus (Redis Streams, receiver.bus): every stream's audio and lifecycle for `receiver worker`
    bus_url: str = field(default="", repr=False)  # redis://host:port/db; empty: no bus
    bus_prefix: str = "receiver"  # key prefix: {prefix}:streams, {prefix}:audio:{stream_id}, {prefix}:events
    bus_block_ms: int = 200  # audio per bus entry
    bus_max_seconds: float = 120.0  # audio a stream keeps on the bus for a late worker (MAXLEN ~)
    bus_queue: int = 2000  # entries waiting for Redis; when full, new ones are dropped and counted
    bus_retention_seconds: float = 18_000.0  # lifecycle entries and unfinished audio go after this (> the longest call)

    # Worker (`receiver worker`): plugins on streams from the bus
    worker_name: str = ""  # consumer name in the group; default host-pid
    worker_streams: int = 16  # streams one worker runs at once
    worker_claim_timeout: float = 10.0  # a worker silent this long loses its streams to another
    worker_idle_timeout: float = 60.0  # no audio on the bus this long: the stream is closed (its receiver died)

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
        if not 0 <= self.webhook_port <= 65535:
            raise ConfigError(f"webhook_port must be 0-65535, not {self.webhook_port}")
        if self.webhook_max_body_bytes < 1024:
            raise ConfigError("webhook_max_body_bytes must be at least 1024")
        if self.store_timeout <= 0:
            raise ConfigError("store_timeout must be positive")
        if bool(self.webhook_user) != bool(self.webhook_password):
            raise ConfigError("webhook_user and webhook_password go together")
        if self.bus_url and not self.bus_url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError("bus_url must be a redis:// URL")
        if not 20 <= self.bus_block_ms <= 5000:
            raise ConfigError("bus_block_ms must be 20-5000")
        if self.bus_max_seconds <= 0 or self.bus_queue < 1 or self.bus_retention_seconds <= 0:
            raise ConfigError("bus_max_seconds, bus_queue and bus_retention_seconds must be positive")
        if self.worker_streams < 1:
            raise ConfigError("worker_streams must be at least 1")
        if self.worker_claim_timeout <= 0 or self.worker_idle_timeout <= 0:
            raise ConfigError("worker_claim_timeout and worker_idle_timeout must be positive")
        _check_security(self)
        object.__setattr__(self, "routes", parse_routes(self.routes))

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
                take(f"{key}_{sub}" if f"{key}_{sub}" in known else sub, subvalue, f"[{key}] ")
        else:
            take(key, value, "")
    return values


def _convert(name: str, kind: str, raw: str) -> Any:
    try:
        if kind == "tuple[str, ...]":
            return tuple(item.strip() for item in raw.split(",") if item.strip())
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
            raise _not_a(kind, name, raw)
    except ValueError:
        raise _not_a(kind, name, raw) from None
    return raw


def _not_a(kind: str, name: str, raw: str) -> ConfigError:
    return ConfigError(f"{ENV_PREFIX}{name.upper()} must be a {kind}, not {raw!r}")


def _check_security(settings: Settings) -> None:
    """Validate the auth, limits, drain and TLS settings (lists from TOML become tuples)."""

    for f in fields(settings):
        if f.type == "tuple[str, ...]":
            value = getattr(settings, f.name)
            if isinstance(value, str):
                value = (value,) if value else ()
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{f.name} must be a list of strings")
            object.__setattr__(settings, f.name, tuple(value))
    parse_networks(settings.ip_allowlist)
    parse_networks(settings.trusted_proxies)
    if any(not s for s in settings.auth_secrets) or any(not t for t in settings.auth_bearer_tokens):
        raise ConfigError("auth secrets and bearer tokens must not be empty")
    if any(":" not in u or u.startswith(":") for u in settings.auth_basic_users):
        raise ConfigError("auth_basic_users entries must be user:password")
    if not settings.auth_token_param:
        raise ConfigError("auth_token_param must not be empty")
    if settings.public_base_url and not settings.public_base_url.startswith(("wss://", "ws://", "https://", "http://")):
        raise ConfigError("public_base_url must start with wss:// (or ws://, https://, http://)")
    if settings.max_streams < 1:
        raise ConfigError("max_streams must be at least 1")
    if settings.handshake_timeout <= 0:
        raise ConfigError("handshake_timeout must be positive")
    for name in (
        "idle_timeout",
        "start_timeout",
        "max_stream_seconds",
        "max_messages_per_second",
        "rate_window",
        "drain_timeout",
    ):
        if getattr(settings, name) < 0:
            raise ConfigError(f"{name} must not be negative")
    if bool(settings.tls_certfile) != bool(settings.tls_keyfile):
        raise ConfigError("tls_certfile and tls_keyfile go together")
