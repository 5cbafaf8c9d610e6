"""Settings: defaults < config.toml < environment < flags, and validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from receiver.config import Settings
from receiver.errors import ConfigError


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

    assert Settings.load(shipped, env={}) == Settings()


def test_env_names_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("port = 7000\n")

    assert Settings.load(env={"RECEIVER_CONFIG": str(config)}).port == 7000


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[server]\nportt = 1\n", "unknown setting"),
        ("port = [", "c.toml"),
        ("port = 70000\n", "port"),
        ("reorder_window_ms = -1\n", "reorder_window_ms"),
        ("log_format = 'xml'\n", "log_format"),
        ("buffer_seconds = 0.1\n", "buffer_seconds"),
        ("port = '8080'\n", "port must be a int"),
        ("wav = 1\n", "wav must be a bool"),
    ],
)
def test_bad_files_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "c.toml"
    config.write_text(text)

    with pytest.raises(ConfigError, match=message):
        Settings.load(config, env={})


def test_bad_environment_value(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text("")
    with pytest.raises(ConfigError, match="RECEIVER_PORT"):
        Settings.load(env={"RECEIVER_CONFIG": str(tmp_path / "c.toml"), "RECEIVER_PORT": "eighty"})


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        Settings.load(tmp_path / "nope.toml", env={})
