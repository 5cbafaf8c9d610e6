"""
``make demo``: one call, start to finish, and its complete record.

Starts ``receiver serve`` with this directory's settings (config.toml and
RECEIVER_*, as ``make run``: RECEIVER_PORT and RECEIVER_WEBHOOK_PORT choose
the ports) plus speech recognition on the caller's track, runs
``examples/flow.json`` against it with ``receiver simulate`` (a caller who
asks to cancel an order, network faults, the webhooks that follow, and a
check that the recordings equal what was sent), stops the receiver (SIGTERM:
it drains and finalises every file), then prints the call as ``receiver
calls`` and ``receiver transcript`` show it. Exits 1 if any step failed.

The receiver's own log goes to ``demo-receiver.log``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RECEIVER = [sys.executable, "-m", "receiver"]
# The faults' seed: which frames are lost and reordered. Fixed, so every run of the demo is the
# same call; a random draw could drop the frames of the keyword the spotter is shown finding.
SEED = os.environ.get("RECEIVER_DEMO_SEED", "2")
# The built-in engine on the caller's track: a transcript, and a keyword spotter beside it
# (the language model struggles with a synthetic voice; the spotter does not).
SINKS = [
    {"plugin": "pocketsphinx", "tracks": ["inbound"]},
    {"plugin": "pocketsphinx", "name": "spotter", "tracks": ["inbound"], "options": {"keywords": ["cancel my order"]}},
]


def main() -> int:
    env = {**os.environ, "RECEIVER_SINKS": json.dumps(SINKS), "RECEIVER_LOG_FORMAT": "json"}
    # The language model may need more than the default 10 s to finish after the call on a busy machine.
    env.setdefault("RECEIVER_SINK_CLOSE_TIMEOUT", "60")
    log_path = Path("demo-receiver.log")
    print("$ receiver serve   (with speech recognition on the caller's track; log in demo-receiver.log)")
    with log_path.open("w") as log:
        server = subprocess.Popen([*RECEIVER, "serve"], env=env, stderr=subprocess.PIPE, text=True)
        ready = _wait_ready(server, log)
        if ready is None:
            server.wait()
            print(f"the receiver did not start (exit {server.returncode}); its log:", file=sys.stderr)
            print(log_path.read_text()[-3000:], file=sys.stderr)
            if "listen_failed" in log_path.read_text():
                print(
                    "A port is taken (make run in another terminal?): stop it, or choose other ports:\n"
                    "  RECEIVER_PORT=9000 RECEIVER_WEBHOOK_PORT=9001 make demo",
                    file=sys.stderr,
                )
            return 1
        print(f"  streams {ready['streams']}, webhooks {ready['webhooks']}, sinks {', '.join(ready['sinks'])}")
        try:
            flow = ROOT / "examples" / "flow.json"
            command = [
                "simulate", str(flow.relative_to(Path.cwd()) if flow.is_relative_to(Path.cwd()) else flow),
                "--allow-insecure", "--inbound-audio", str(ROOT / "examples" / "caller.wav"),
                "--outbound-audio", "tone:660", "--loss", "0.02", "--reorder-ms", "60", "--seed", SEED,
                "--compare", ready["recordings_dir"], "--log-level", "warning",
            ]  # fmt: skip
            print("\n$ receiver " + " ".join(command))
            simulated = subprocess.run([*RECEIVER, *command], env=env, stdout=subprocess.PIPE, text=True)
            print(simulated.stdout, end="")
        finally:
            server.send_signal(signal.SIGTERM)  # drains, finalises every file and transcript
            server.wait(timeout=120)
    match = re.search(r"^call (\S+) \(", simulated.stdout, re.MULTILINE)
    if match is None:
        print("the simulator ran no call", file=sys.stderr)
        return 1
    call_id = match.group(1)
    ok = simulated.returncode == 0 and server.returncode == 0
    for args in (["calls", call_id], ["transcript", call_id]):
        print(f"\n$ receiver {' '.join(args)}")
        shown = subprocess.run([*RECEIVER, *args], env=env, stdout=subprocess.PIPE, text=True)
        print(shown.stdout, end="")
        ok = ok and shown.returncode == 0 and bool(shown.stdout.strip())
    print(
        "\n" + ("Done: " if ok else "Something failed (see above): ")
        + f"recordings in {ready['recordings_dir']}/{call_id}/, the call record in {ready['database']}.\n"
        "Next: `make run` keeps a receiver running; in another terminal `. .venv/bin/activate`, then\n"
        "`receiver simulate --allow-insecure examples/flow.json` and `receiver calls` (docs/simulator.md)."
    )  # fmt: skip
    return 0 if ok else 1


def _wait_ready(server: subprocess.Popen[str], log: Any) -> dict[str, Any] | None:
    """Copy the receiver's log to ``log`` (on a thread, for as long as it runs); its receiver_ready line."""
    assert server.stderr is not None
    ready: list[dict[str, Any]] = []
    seen = threading.Event()

    def copy() -> None:
        assert server.stderr is not None
        for line in server.stderr:
            log.write(line)
            log.flush()
            if not ready and '"receiver_ready"' in line:
                ready.append(json.loads(line))
                seen.set()
        seen.set()  # the receiver exited

    threading.Thread(target=copy, daemon=True).start()
    seen.wait(timeout=120)
    return ready[0] if ready else None


if __name__ == "__main__":
    sys.exit(main())
