"""``receiver serve`` start-up: every setting validated before a port opens, then one summary line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from receiver.cli import build_parser
from receiver.events import Platform


def serve(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "receiver", "serve", "--log-format", "json", *args],
        cwd=tmp_path,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("RECEIVER_")}, **(env or {})},
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_bad_plugin_config_stops_start_up_before_any_port_opens(tmp_path: Path) -> None:
    config = tmp_path / "receiver.toml"
    config.write_text('port = 0\nwebhook_port = 0\n[[sinks]]\nplugin = "pocketsphinx"\noptions = { nonsense = 1 }\n')

    proc = serve(tmp_path, "--config", str(config))
    _, err = proc.communicate(timeout=60)

    assert proc.returncode == 2
    assert "configuration error: sink 'pocketsphinx' (plugin pocketsphinx): bad options" in err
    assert "webhooks_started" not in err and "server_started" not in err


def test_start_up_logs_one_summary_of_what_it_loaded(tmp_path: Path) -> None:
    config = tmp_path / "conf" / "receiver.toml"
    config.parent.mkdir()
    config.write_text(
        'port = 0\nwebhook_port = 0\nrecordings_dir = "rec"\nmax_streams = 20\nauth_bearer_tokens = ["t"]\n'
        '[[sinks]]\nplugin = "vad"\ntracks = ["inbound"]\n'
    )

    proc = serve(tmp_path, env={"RECEIVER_CONFIG": str(config), "RECEIVER_IDLE_TIMEOUT": "30"})
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            entry = json.loads(line)
            if entry["event"] == "receiver_ready":
                break
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)

    assert entry["streams"].startswith("ws://127.0.0.1:") and entry["streams"].endswith("/<any path>")
    assert entry["webhooks"].startswith("http://127.0.0.1:") and entry["calls_api"].endswith("/calls")
    assert entry["database"] == str(config.parent / "receiver.db")  # the config file's directory
    assert entry["recordings_dir"] == str(config.parent / "rec")
    assert entry["sinks"] == ["wav (inbound, outbound, stereo)", "vad (plugin vad, tracks inbound)"]
    assert entry["stream_auth"] == ["bearer"]
    assert entry["limits"] == {"max_streams": 20, "idle_timeout": 30.0}
    assert entry["config_file"] == str(config)
    assert proc.returncode == 0


def every_action(parser: object) -> list[tuple[str, object]]:
    import argparse

    assert isinstance(parser, argparse.ArgumentParser)
    found = [(parser.prog, action) for action in parser._actions]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found += every_action(sub)
    return found


def test_every_subcommand_has_a_description_and_examples_and_every_option_help() -> None:
    import argparse

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in commands.choices.items():
        assert sub.description, f"receiver {name} has no description"
        assert sub.epilog and "examples:" in sub.epilog, f"receiver {name} has no examples"
    missing = [
        f"{prog} {'/'.join(a.option_strings) or a.dest}"  # type: ignore[attr-defined]
        for prog, a in every_action(parser)
        if not a.help and not isinstance(a, argparse._SubParsersAction)  # type: ignore[attr-defined]
    ]
    assert missing == []
    named = {
        "minivoice": "MiniVoice", "twilio": "Twilio", "signalwire": "SignalWire", "telnyx": "Telnyx",
        "plivo": "Plivo", "vonage": "Vonage", "exotel": "Exotel", "jambonz": "jambonz",
        "audiofork": "FreeSWITCH", "asterisk": "Asterisk", "audiohook": "AudioHook",
    }  # fmt: skip
    assert set(named) == {p.value for p in Platform}  # a new platform must be named in the description
    for name in named.values():
        assert name in (parser.description or "")


@pytest.mark.parametrize("command", ["serve", "webhooks"])
def test_serve_and_webhooks_take_the_same_webhook_options(command: str) -> None:
    args = build_parser().parse_args([command, "--webhook-host", "0.0.0.0", "--webhook-port", "9001"])

    assert (args.webhook_host, args.webhook_port) == ("0.0.0.0", 9001)


def test_health_asks_the_port_the_settings_give(tmp_path: Path, unused_tcp_port: int) -> None:
    env = {"RECEIVER_PORT": str(unused_tcp_port), "RECEIVER_WEBHOOKS": "false"}
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RECEIVER_")}

    def health() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "receiver", "health"], cwd=tmp_path, env={**clean, **env},
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip

    down = health()
    assert down.returncode == 1 and f"http://127.0.0.1:{unused_tcp_port}/healthz unreachable" in down.stderr
    proc = serve(tmp_path, env=env)
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if json.loads(line)["event"] == "receiver_ready":
                break
        up = health()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert up.returncode == 0 and up.stdout == f"ok: http://127.0.0.1:{unused_tcp_port}/healthz\n"
