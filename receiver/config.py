"""
Settings: one frozen dataclass, read from defaults < config.toml < environment < flags.

``Settings.load`` is the only code that reads the environment or the config
file. Everything else receives ``Settings`` or the values it needs.

Every setting belongs to one TOML section (``SECTIONS``). In its section a
setting is written by its full name or, where the section has a prefix,
without it: ``[webhooks] port`` is ``webhook_port``, ``[bus] url`` is
``bus_url`` (the variables are always the full name: ``RECEIVER_BUS_URL``).
A setting under another section is an error naming the right one; a
misspelt key or ``RECEIVER_`` variable gets a "did you mean". Keys outside
any section are read by their full name.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import tomllib
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Final

import orjson

from receiver.errors import ConfigError
from receiver.events import Track
from receiver.routes import parse_routes
from receiver.security.networks import parse_networks
from receiver.security.signatures import parse_api_keys

ENV_PREFIX = "RECEIVER_"
DEFAULT_CONFIG = "config.toml"
# RECEIVER_ variables that are not settings: the config file's path, and CI's switch for tests.
OTHER_VARIABLES: Final = frozenset({"CONFIG", "CI"})
# Paths a config file gives (or leaves at their defaults) are relative to the file's own
# directory, so every command finds the same files whatever directory it runs in.
# From the environment or a flag they are relative to the working directory, as usual.
PATH_SETTINGS = ("recordings_dir", "database", "tls_certfile", "tls_keyfile")

_SINK_TRACKS: Final = {
    "inbound": (Track.INBOUND,),
    "outbound": (Track.OUTBOUND,),
    "both": (Track.INBOUND, Track.OUTBOUND),
}


@dataclass(frozen=True, slots=True)
class SinkSpec:
    """One ``[[sinks]]`` table: a plugin, its name, the tracks it gets and its options (read-only)."""

    plugin: str
    name: str
    tracks: tuple[Track, ...]
    options: Mapping[str, Any] = field(default_factory=dict)


def parse_sinks(raw: Any) -> tuple[SinkSpec, ...]:
    """Validate the ``sinks`` setting: ``[[sinks]]`` tables, their JSON text (from the environment), or specs.

    Which plugins exist is checked when the sinks are built (``receiver.transcription.plugins``).

    Raises:
        ConfigError: The shape or a value is wrong.
    """
    if isinstance(raw, str):
        try:
            raw = orjson.loads(raw) if raw.strip() else []
        except orjson.JSONDecodeError as exc:
            raise ConfigError(f"sinks: not valid JSON: {exc}") from None
    if not isinstance(raw, Sequence) or isinstance(raw, str | bytes):
        raise ConfigError("sinks must be a list of tables ([[sinks]] in config.toml)")
    specs: list[SinkSpec] = []
    for i, table in enumerate(raw):
        spec = table if isinstance(table, SinkSpec) else _sink_spec(table, f"sinks[{i}]")
        if any(s.name == spec.name for s in specs):
            raise ConfigError(f"sinks[{i}]: two sinks are named {spec.name!r}; give one a name")
        specs.append(spec)
    return tuple(specs)


def _sink_spec(table: object, where: str) -> SinkSpec:
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where} must be a table")
    unknown = set(table) - {"plugin", "name", "tracks", "options"}
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} (plugin, name, tracks, options)")
    plugin = table.get("plugin")
    if not isinstance(plugin, str) or not plugin:
        raise ConfigError(f"{where}: plugin must be a plugin name")
    name = table.get("name", plugin)
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}: name must be a string")
    tracks_raw = table.get("tracks", "both")
    tracks: list[Track] = []
    for value in [tracks_raw] if isinstance(tracks_raw, str) or not isinstance(tracks_raw, Sequence) else tracks_raw:
        if value not in _SINK_TRACKS:
            raise ConfigError(f"{where}: tracks must name inbound, outbound or both, not {value!r}")
        tracks.extend(t for t in _SINK_TRACKS[value] if t not in tracks)
    options = table.get("options", {})
    if not isinstance(options, Mapping):
        raise ConfigError(f"{where}: options must be a table")
    return SinkSpec(plugin=plugin, name=name, tracks=tuple(tracks), options=types.MappingProxyType(dict(options)))


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
    min_free_disk_bytes: int = 1 << 30  # less free: new streams 503 (disk_low), live recordings finalised; 0: off
    max_recording_bytes: int = 2 << 30  # one stream's files; then they are finalised (recording_limit); 0: off
    recordings_max_bytes: int = 0  # the recordings directory's size: over it, as disk_low (recordings_quota); 0: off

    # Media clock and buffers
    reorder_window_ms: int = 100
    max_gap_ms: int = 30_000
    max_media_lead_seconds: float = 5.0  # media time this far ahead of wall time (+ reorder window): close 4425
    buffer_seconds: float = 10.0
    sink_close_timeout: float = 10.0

    # Limits
    max_message_bytes: int = 65_536

    # Transcription plugins ([[sinks]] tables: plugin, name, tracks, options; see receiver.transcription)
    sinks: tuple[SinkSpec, ...] = ()
    transcript_callback_url: str = ""  # POST every transcript event here (JSON); empty: none

    # Stream formats fixed per path ([[routes]] tables: path, format, sample_rate, mix, stereo_channels;
    # see docs/platforms.md). Other paths: the format is detected from the first message.
    routes: tuple[Any, ...] = ()

    # Authentication (see docs/security.md); lists: TOML arrays or comma-separated env values
    auth_secrets: tuple[str, ...] = field(default=(), repr=False)  # stream-token HMAC keys; the first signs
    auth_token_param: str = "token"  # query parameter and start custom parameter carrying the token
    auth_start_token: bool = True  # accept the token in the start message when the URL has none
    auth_token_ttl: float = 600.0  # seconds a stream URL signed by /answer may be used to connect
    auth_token_max_streams: int = 4  # streams one stream token may open (per process); 0: no limit
    auth_bearer_tokens: tuple[str, ...] = field(default=(), repr=False)
    auth_basic_users: tuple[str, ...] = field(default=(), repr=False)  # "user:password"
    twilio_auth_token: str = field(default="", repr=False)  # validates X-Twilio-Signature when present
    plivo_auth_token: str = field(default="", repr=False)  # validates X-Plivo-Signature-V3 when present
    vonage_signature_secret: str = field(default="", repr=False)  # validates a Vonage JWT (Authorization: Bearer)
    audiohook_api_keys: tuple[str, ...] = field(default=(), repr=False)  # "API_KEY:CLIENT_SECRET" (base64 secret)
    public_base_url: str = ""  # wss://host as the platform sees it (behind a proxy); default: wss://<Host>
    ip_allowlist: tuple[str, ...] = ()  # CIDRs; empty: any address
    trusted_proxies: tuple[str, ...] = ()  # CIDRs whose X-Forwarded-For is believed

    # Connection limits (0 switches a time or rate limit off)
    max_streams: int = 1000  # concurrent authenticated streams: 503 at the handshake, 1013 when over after it
    max_unauthenticated: int = 128  # upgrades without a credential, waiting for a start token: then 503
    max_unauthenticated_per_client: int = 16  # the same, per client address
    max_handshakes: int = 256  # TCP connections still in their HTTP upgrade: more are dropped at once
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
    # Under load (5,000 messages a second and more), the event loop turns at most once per this many
    # ms: reads gather in the kernel, one wake-up takes them all (receiver/stream/pacing.py); 0: off
    read_pacing_ms: float = 1.0
    # A stream's socket ACKs every second segment instead of each read (Linux's delayed-ACK mode,
    # set at the first media frame and kept; receiver/stream/server.py). false: the kernel's default
    delayed_acks: bool = True

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
    insecure_webhooks: bool = False  # serve the webhook port on a non-loopback address without credentials
    webhook_max_future_seconds: float = 86_400.0  # a created_at further ahead is recorded at its receipt time
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

    # Where the settings came from: the config file read ("" when none), for messages.
    config_file: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be 0-65535, not {self.port}")
        if self.workers < 1:
            raise ConfigError("workers must be at least 1")
        if self.reorder_window_ms < 0 or self.reorder_window_ms > 5_000:
            raise ConfigError("reorder_window_ms must be 0-5000")
        if self.max_gap_ms <= 0:
            raise ConfigError("max_gap_ms must be positive")
        if min(self.min_free_disk_bytes, self.max_recording_bytes, self.recordings_max_bytes) < 0:
            raise ConfigError("min_free_disk_bytes, max_recording_bytes and recordings_max_bytes must not be negative")
        if self.max_media_lead_seconds < 0:
            raise ConfigError("max_media_lead_seconds must not be negative")
        if self.buffer_seconds * 1000 < 2 * self.reorder_window_ms or self.buffer_seconds > 600:
            raise ConfigError("buffer_seconds must hold two reorder windows and at most 600 s")
        if not 0 <= self.read_pacing_ms <= 20:
            raise ConfigError("read_pacing_ms must be 0-20 (0: off)")
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
        if self.webhook_max_future_seconds < 0:
            raise ConfigError("webhook_max_future_seconds must not be negative")
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
        # Tables from TOML or JSON text from the environment become specs here, once.
        object.__setattr__(self, "sinks", parse_sinks(self.sinks))

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
        Relative paths the file gives (and the defaults of the paths it leaves
        out) are taken from the file's directory (``PATH_SETTINGS``).

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
            base = Path(path).resolve().parent
            for name in PATH_SETTINGS:
                value = values.get(name, _DEFAULTS[name])
                # A URL (database = "postgresql://...") is no path.
                if isinstance(value, str) and value and "://" not in value and not Path(value).is_absolute():
                    values[name] = str(base / value)
            values["config_file"] = str(Path(path).resolve())
        kinds = {f.name: str(f.type) for f in fields(cls) if f.name not in _INTERNAL}
        _check_variables(env, kinds)
        for name, kind in kinds.items():
            raw = env.get(ENV_PREFIX + name.upper())
            if raw is not None:
                values[name] = _convert(name, kind, raw)
        for name, value in (overrides or {}).items():
            if value is not None:
                values[name] = value
        try:
            return cls(**values)
        except TypeError as exc:
            raise ConfigError(str(exc)) from None

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


# The section each setting belongs to, in config.toml's order, and the prefix a
# setting may drop there (``[webhooks] port`` is ``webhook_port``).
SECTIONS: Final[Mapping[str, tuple[str, ...]]] = {
    "server": ("host", "port", "workers", "routes"),
    "recording": (
        "recordings_dir",
        "wav",
        "repair_on_start",
        "min_free_disk_bytes",
        "max_recording_bytes",
        "recordings_max_bytes",
    ),
    "media": (
        "reorder_window_ms",
        "max_gap_ms",
        "max_media_lead_seconds",
        "buffer_seconds",
        "sink_close_timeout",
        "fast_path",
        "read_pacing_ms",
        "delayed_acks",
    ),
    "limits": (
        "max_message_bytes",
        "max_streams",
        "max_unauthenticated",
        "max_unauthenticated_per_client",
        "max_handshakes",
        "handshake_timeout",
        "start_timeout",
        "idle_timeout",
        "max_stream_seconds",
        "max_messages_per_second",
        "rate_window",
    ),
    "auth": (
        "auth_secrets",
        "auth_token_param",
        "auth_start_token",
        "auth_token_ttl",
        "auth_token_max_streams",
        "auth_bearer_tokens",
        "auth_basic_users",
        "twilio_auth_token",
        "plivo_auth_token",
        "vonage_signature_secret",
        "audiohook_api_keys",
        "public_base_url",
        "ip_allowlist",
        "trusted_proxies",
    ),
    "drain": ("drain_timeout",),
    "tls": ("tls_certfile", "tls_keyfile", "tls_key_password"),
    "logging": ("log_format", "log_level", "media_summary_seconds"),
    "webhooks": (
        "webhooks",
        "webhook_host",
        "webhook_port",
        "database",
        "webhook_secret",
        "webhook_user",
        "webhook_password",
        "webhook_max_body_bytes",
        "webhook_max_future_seconds",
        "insecure_webhooks",
        "store_timeout",
        "answer",
        "answer_actions",
        "answer_allow_ws",
    ),
    "transcripts": ("transcript_callback_url", "sinks"),
    "bus": ("bus_url", "bus_prefix", "bus_block_ms", "bus_max_seconds", "bus_queue", "bus_retention_seconds"),
    "worker": ("worker_name", "worker_streams", "worker_claim_timeout", "worker_idle_timeout"),
}
_PREFIXES: Final = {
    "auth": "auth_",
    "tls": "tls_",
    "logging": "log_",
    "webhooks": "webhook_",
    "bus": "bus_",
    "worker": "worker_",
}
_SECTION_OF: Final = {name: section for section, names in SECTIONS.items() for name in names}
_TOML_TYPES: dict[str, type | tuple[type, ...]] = {"int": int, "float": (int, float), "bool": bool, "str": str}
_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(Settings)}
# Set by load, never by a file or the environment.
_INTERNAL = ("config_file",)
_KIND_NAMES = {"int": "an integer", "float": "a number", "bool": "a boolean (true or false)", "str": "a string"}


def _kind_name(kind: str) -> str:
    return _KIND_NAMES.get(kind, "a list of strings" if kind == "tuple[str, ...]" else f"a {kind}")


def _did_you_mean(word: str, choices: Iterable[str], shown: Callable[[str], str] = str) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.75)
    return f"; did you mean {shown(close[0])}?" if close else ""


def _section_keys(section: str) -> dict[str, str]:
    """The keys ``[section]`` takes: each setting's full name and, with the section's prefix, its short one."""
    keys = {name: name for name in SECTIONS[section]}
    prefix = _PREFIXES.get(section)
    if prefix is not None:
        keys.update({name.removeprefix(prefix): name for name in SECTIONS[section] if name.startswith(prefix)})
    return keys


def _setting_in_section(section: str, key: str, path: Path) -> str:
    """The setting ``key`` names in ``[section]``.

    Raises:
        ConfigError: An unknown section or key, or a setting that belongs in another section.
    """
    if section not in SECTIONS:
        raise ConfigError(f"{path}: unknown section [{section}]" + _did_you_mean(section, SECTIONS, "[{}]".format))
    keys = _section_keys(section)
    if key in keys:
        return keys[key]
    for other in SECTIONS:
        name = _section_keys(other).get(key)
        if name is not None:
            short = key if key == name else f"{key} (that is {name})"
            raise ConfigError(f"{path}: [{section}] {short} belongs under [{other}]")
    raise ConfigError(f"{path}: unknown setting [{section}] {key}" + _did_you_mean(key, keys))


def _from_toml(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    kinds = {f.name: str(f.type) for f in fields(Settings) if f.name not in _INTERNAL}
    values: dict[str, Any] = {}

    def take(name: str, value: Any, where: str) -> None:
        kind = kinds[name]
        expected = _TOML_TYPES.get(kind)
        if expected is not None and (not isinstance(value, expected) or (kind != "bool" and isinstance(value, bool))):
            raise ConfigError(f"{path}: {where} must be {_kind_name(kind)}, not {type(value).__name__}")
        if name in values:
            raise ConfigError(f"{path}: {name} is set twice")
        values[name] = float(value) if kind == "float" else value

    for key, value in data.items():
        if key in kinds and not (isinstance(value, dict) and key in SECTIONS):
            take(key, value, key)  # outside any section: the full name
        elif isinstance(value, dict):
            for sub, subvalue in value.items():
                take(_setting_in_section(key, sub, path), subvalue, f"[{key}] {sub}")
        else:
            raise ConfigError(f"{path}: unknown setting {key}" + _did_you_mean(key, kinds))
    return values


def _check_variables(env: Mapping[str, str], kinds: Mapping[str, str]) -> None:
    """A ``RECEIVER_`` variable close to a setting's name but not one is a slip: say which was meant."""
    for variable in env:
        if not variable.startswith(ENV_PREFIX):
            continue
        name = variable.removeprefix(ENV_PREFIX)
        if name in OTHER_VARIABLES or name.lower() in kinds:
            continue
        hint = _did_you_mean(name.lower(), kinds, lambda n: ENV_PREFIX + n.upper())
        if hint:
            raise ConfigError(f"{variable} is not a setting{hint}")


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
    return ConfigError(f"{ENV_PREFIX}{name.upper()} must be {_kind_name(kind)}, not {raw!r}")


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
    try:
        parse_api_keys(settings.audiohook_api_keys)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if not settings.auth_token_param:
        raise ConfigError("auth_token_param must not be empty")
    if settings.public_base_url and not settings.public_base_url.startswith(("wss://", "ws://", "https://", "http://")):
        raise ConfigError("public_base_url must start with wss:// (or ws://, https://, http://)")
    if settings.auth_token_ttl <= 0:
        raise ConfigError("auth_token_ttl must be positive")
    if settings.auth_token_max_streams < 0:
        raise ConfigError("auth_token_max_streams must not be negative")
    if settings.max_streams < 1:
        raise ConfigError("max_streams must be at least 1")
    for name in ("max_unauthenticated", "max_unauthenticated_per_client", "max_handshakes"):
        if getattr(settings, name) < 1:
            raise ConfigError(f"{name} must be at least 1")
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
