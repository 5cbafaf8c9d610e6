"""Settings: defaults < config.toml < environment < flags, and validation."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from receiver.config import SECTIONS, Settings, SinkSpec
from receiver.errors import ConfigError
from receiver.events import Track


def test_precedence(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[server]\nport = 9000\nhost = "0.0.0.0"\n[media]\nreorder_window_ms = 60\n')

    settings = Settings.load(
        config, env={"RECEIVER_PORT": "9100", "RECEIVER_WAV": "false"}, overrides={"port": 9200, "host": None}
    )

    assert settings.port == 9200  # flag beats env beats file
    assert settings.host == "0.0.0.0"  # file (flag not given)
    assert settings.reorder_window_ms == 60
    assert settings.wav is False


def test_the_shipped_config_file_is_valid() -> None:
    shipped = Path(__file__).parent.parent / "config.toml"

    root = shipped.parent.resolve()
    assert Settings.load(shipped, env={}) == Settings(
        recordings_dir=str(root / "recordings"), database=str(root / "receiver.db")
    )


def test_env_names_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("port = 7000\n")

    assert Settings.load(env={"RECEIVER_CONFIG": str(config)}).port == 7000


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[server]\nportt = 1\n", r"unknown setting \[server\] portt; did you mean port\?"),
        ("port = [", "c.toml"),
        ("port = 70000\n", "port"),
        ("reorder_window_ms = -1\n", "reorder_window_ms"),
        ("log_format = 'xml'\n", "log_format"),
        ("buffer_seconds = 0.1\n", "buffer_seconds"),
        ("[media]\nread_pacing_ms = 50\n", r"read_pacing_ms must be 0-20 \(0: off\)"),
        ("port = '8080'\n", "port must be an integer, not str"),
        ("wav = 1\n", r"wav must be a boolean \(true or false\), not int"),
    ],
)
def test_bad_files_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "c.toml"
    config.write_text(text)

    with pytest.raises(ConfigError, match=message):
        Settings.load(config, env={})


def test_relative_paths_in_a_config_file_are_taken_from_its_directory(tmp_path: Path) -> None:
    config = tmp_path / "etc" / "receiver.toml"
    config.parent.mkdir()
    config.write_text('recordings_dir = "audio"\ntls_certfile = "/abs/cert.pem"\ntls_keyfile = "key.pem"\n')

    settings = Settings.load(config, env={"RECEIVER_DATABASE": "here.db"})

    assert settings.recordings_dir == str(config.parent / "audio")
    assert settings.tls_certfile == "/abs/cert.pem" and settings.tls_keyfile == str(config.parent / "key.pem")
    assert settings.database == "here.db"  # the environment's paths are the working directory's
    assert settings.config_file == str(config)
    assert Settings.load(env={}).config_file in ("", str(Path("config.toml").resolve()))


def test_bad_environment_value(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text("")
    with pytest.raises(ConfigError, match="RECEIVER_PORT must be an integer, not 'eighty'"):
        Settings.load(env={"RECEIVER_CONFIG": str(tmp_path / "c.toml"), "RECEIVER_PORT": "eighty"})


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        Settings.load(tmp_path / "nope.toml", env={})


# -- sections --------------------------------------------------------------------


def load_text(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> Settings:
    config = tmp_path / "c.toml"
    config.write_text(text)
    return Settings.load(config, env=env or {})


def test_every_setting_belongs_to_exactly_one_section() -> None:
    placed = [name for names in SECTIONS.values() for name in names]

    assert sorted(placed) == sorted(f.name for f in fields(Settings) if f.name != "config_file")  # set by load


def test_a_section_reads_its_settings_by_full_or_short_name(tmp_path: Path) -> None:
    settings = load_text(
        tmp_path,
        '[webhooks]\nport = 9000\nhost = "0.0.0.0"\nwebhook_max_body_bytes = 2048\n'
        '[bus]\nurl = "redis://127.0.0.1:1/0"\n[auth]\nsecrets = ["k"]\n[server]\nport = 7000\n',
    )

    assert (settings.webhook_port, settings.webhook_host, settings.webhook_max_body_bytes) == (9000, "0.0.0.0", 2048)
    assert (settings.port, settings.host) == (7000, "127.0.0.1")  # the stream port is the [server] one
    assert settings.bus_url == "redis://127.0.0.1:1/0"
    assert settings.auth_secrets == ("k",)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[server]\nwebhook_port = 1\n",
            r"\[server\] webhook_port belongs under \[webhooks\]",
        ),
        ("[webhooks]\nworkers = 2\n", r"\[webhooks\] workers belongs under \[server\]"),
        ("[limits]\nsecrets = ['k']\n", r"\[limits\] secrets \(that is auth_secrets\) belongs under \[auth\]"),
        (
            "[media]\nreorder_windw_ms = 1\n",
            r"unknown setting \[media\] reorder_windw_ms; did you mean reorder_window_ms\?",
        ),
        ("[webhooks]\nprot = 1\n", r"unknown setting \[webhooks\] prot; did you mean port\?"),
        ("[sever]\nport = 1\n", r"unknown section \[sever\]; did you mean \[server\]\?"),
        ("prot = 1\n", r"unknown setting prot; did you mean port\?"),
        ("port = 1\n[server]\nport = 2\n", "port is set twice"),
        ("[server]\nport = 'x'\n", r"\[server\] port must be an integer, not str"),
    ],
)
def test_misplaced_and_misspelt_keys_are_errors_that_say_what_was_meant(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_text(tmp_path, text)


def test_a_misspelt_variable_is_an_error_that_says_what_was_meant(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"RECEIVER_WEBHOOK_PROT is not a setting; did you mean RECEIVER_WEBHOOK_PORT\?"
    ):
        load_text(tmp_path, "", env={"RECEIVER_WEBHOOK_PROT": "9000"})


def test_variables_far_from_any_setting_are_left_alone(tmp_path: Path) -> None:
    """The RECEIVER_ prefix is shared (RECEIVER_CI, tools' own variables): only near-misses are errors."""
    settings = load_text(tmp_path, "", env={"RECEIVER_CI": "1", "RECEIVER_SOMETHING_ELSE_ENTIRELY": "x"})

    assert settings == Settings(recordings_dir=str(tmp_path / "recordings"), database=str(tmp_path / "receiver.db"))


def test_sinks_are_typed_specs_once_loaded(tmp_path: Path) -> None:
    settings = load_text(
        tmp_path,
        '[[sinks]]\nplugin = "vad"\ntracks = ["inbound"]\noptions = { aggressiveness = 2 }\n',
    )

    (spec,) = settings.sinks
    assert spec == SinkSpec("vad", "vad", (Track.INBOUND,), {"aggressiveness": 2})
    with pytest.raises(TypeError):
        spec.options["aggressiveness"] = 3  # type: ignore[index]
    assert Settings(sinks=settings.sinks).sinks == settings.sinks  # specs pass through unchanged


@pytest.mark.parametrize(
    "text",
    [
        "[[sinks]]\nplugin = 'vad'\ntracks = ['left']\n",
        "[[sinks]]\nplugn = 'vad'\n",
    ],
)
def test_bad_sink_tables_fail_at_load(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError, match=r"sinks\[0\]"):
        load_text(tmp_path, text)
